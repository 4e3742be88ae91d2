"""Datasets and who owns them: only a dataset's owner (or a superuser) changes it.

A dataset's owner reviews its monitors' flagged traces and confirms its pinned-case requests,
so who owns it is governed as for gates and rubrics: the owner (or a superuser) changes the
dataset, its owner included, whatever the path (admin form, apply_config, the shell); every
owner change is an audit event (datasets_app.receivers, from the history record). A dataset
nobody owns yet may be taken on by anyone whose role may change datasets.
"""

from django.core.exceptions import PermissionDenied
from django.db import transaction

from datasets_app.models import Dataset
from datasets_app.services.cases import Actor, stamp


def dataset_change_refusal(dataset: Dataset | None, actor: Actor) -> PermissionDenied | None:
    """Why ``actor`` may not change ``dataset`` as stored (None: they may; the admin asks too).

    The stored owner decides, never the one on an object being edited: a form that names
    someone else as owner must not be what lets its sender in.
    """
    if actor is None or actor.is_superuser or dataset is None or dataset.pk is None:
        return None  # None: the system, authorised where the request came in
    owner = Dataset.objects.filter(pk=dataset.pk).values_list("owner_id", "owner__username").first()
    if owner is None or owner[0] is None:
        if actor.has_perm("datasets_app.change_dataset"):
            return None
        return PermissionDenied("You may not change datasets (the Dataset owner role may).")
    if owner[0] != actor.pk:
        return PermissionDenied(
            f"Only the dataset's owner ({owner[1]}) changes it, its owner included: "
            "ask them (or a superuser) to hand it over."
        )
    return None


@transaction.atomic
def store_dataset(dataset: Dataset, *, actor: Actor, reason: str = "saved") -> Dataset:
    """Save a new or changed dataset (the admin form's path), if ``actor`` may change it."""
    if dataset.pk is not None:
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()  # one change at a time
    if refusal := dataset_change_refusal(dataset, actor):
        raise refusal
    dataset.full_clean()
    stamp(dataset, actor, reason)
    dataset.save()
    return dataset


def save_dataset(
    *, slug: str, name: str, owner: Actor, description: str = "", actor: Actor = None
) -> Dataset:
    """Create or update a dataset by slug (apply_config's path), by the same rule."""
    dataset = Dataset.objects.filter(slug=slug).first() or Dataset(slug=slug)
    dataset.name, dataset.owner, dataset.description = name, owner, description
    return store_dataset(dataset, actor=actor)
