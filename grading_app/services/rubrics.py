"""Rubric versions and their sign-off: draft -> submitted -> approved | rejected -> retired.

A submitted version is immutable; the rubric's owner decides, never on their own version;
every state change is recorded with who, when and a note, in the same transaction.
"""

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max

from grading_app.choices import RubricState
from grading_app.models import Endpoint, Rubric, RubricVersion, RubricVersionEvent

EDITABLE_FIELDS = ("criteria", "scale", "pass_threshold", "endpoint", "model", "prompt_template", "few_shot")


@transaction.atomic
def save_rubric(
    *,
    slug: str,
    name: str,
    owner: AbstractBaseUser,
    description: str = "",
    actor: AbstractBaseUser | None = None,
) -> Rubric:
    """Create or update a rubric (its name and owner; versions have their own workflow)."""
    rubric = Rubric.objects.filter(slug=slug).first() or Rubric(slug=slug)
    rubric.name, rubric.owner, rubric.description = name, owner, description
    rubric.full_clean()
    rubric._history_user = actor
    rubric.save()
    return rubric


def _record(version: RubricVersion, from_state: str, actor: AbstractBaseUser, note: str) -> None:
    RubricVersionEvent.objects.create(
        version=version, from_state=from_state, to_state=version.state, actor=actor, note=note
    )


@transaction.atomic
def create_rubric_version(
    rubric: Rubric,
    *,
    actor: AbstractBaseUser,
    criteria: str,
    endpoint: Endpoint,
    model: str,
    note: str = "",
    **fields: Any,
) -> RubricVersion:
    """A new draft version authored by ``actor``, numbered after the rubric's last one."""
    rubric = Rubric.objects.select_for_update().get(pk=rubric.pk)  # serialise numbering
    number = (rubric.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = RubricVersion(
        rubric=rubric,
        number=number,
        criteria=criteria,
        endpoint=endpoint,
        model=model,
        author=actor,
        **fields,
    )
    version.full_clean()
    version.save()
    _record(version, "", actor, note or "created")
    return version


def _locked(version: RubricVersion) -> RubricVersion:
    return RubricVersion.objects.select_for_update().select_related("rubric").get(pk=version.pk)


@transaction.atomic
def edit_rubric_version(version: RubricVersion, *, actor: AbstractBaseUser, **changes: Any) -> RubricVersion:
    """Change a draft. Submitted and later versions are immutable: write a new version."""
    version = _locked(version)
    if version.state != RubricState.DRAFT:
        raise ValidationError(
            f"Version {version.number} is {version.get_state_display().lower()} and can no longer change; "
            "create a new version instead."
        )
    if actor.pk not in (version.author_id, version.rubric.owner_id):
        raise PermissionDenied("Only the author or the rubric owner can edit a draft version.")
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(f"Not editable: {', '.join(sorted(unknown))}.")
    for field, value in changes.items():
        setattr(version, field, value)
    version.full_clean()
    version.save()
    return version


def _transition(
    version: RubricVersion, *, actor: AbstractBaseUser, allowed_from: tuple[str, ...], to: str, note: str
) -> RubricVersion:
    version = _locked(version)
    if version.state not in allowed_from:
        raise ValidationError(
            f"Version {version.number} is {version.get_state_display().lower()}; cannot move it to {to}."
        )
    previous = version.state
    version.state = to
    version.save(update_fields=["state"])
    _record(version, previous, actor, note)
    return version


def _require_owner(version: RubricVersion, actor: AbstractBaseUser, doing: str) -> None:
    if actor.pk != version.rubric.owner_id:
        raise PermissionDenied(f"Only the rubric's owner can {doing}.")


@transaction.atomic
def submit_rubric_version(
    version: RubricVersion, *, actor: AbstractBaseUser, note: str = ""
) -> RubricVersion:
    """Freeze a draft and ask the rubric owner to sign it off."""
    if actor.pk not in (version.author_id, version.rubric.owner_id):
        raise PermissionDenied("Only the author or the rubric owner can submit a version.")
    return _transition(
        version,
        actor=actor,
        allowed_from=(RubricState.DRAFT,),
        to=RubricState.SUBMITTED,
        note=note or "submitted for sign-off",
    )


@transaction.atomic
def approve_rubric_version(
    version: RubricVersion, *, actor: AbstractBaseUser, note: str = ""
) -> RubricVersion:
    """The rubric owner signs off a submitted version written by someone else."""
    _require_owner(version, actor, "approve a version")
    if actor.pk == version.author_id:
        raise PermissionDenied("You wrote this version: someone else must sign it off.")
    return _transition(
        version,
        actor=actor,
        allowed_from=(RubricState.SUBMITTED,),
        to=RubricState.APPROVED,
        note=note or "approved",
    )


@transaction.atomic
def reject_rubric_version(version: RubricVersion, *, actor: AbstractBaseUser, note: str) -> RubricVersion:
    """The rubric owner sends a submitted version back, saying why."""
    _require_owner(version, actor, "reject a version")
    if not note.strip():
        raise ValidationError({"note": "Say why the version is rejected."})
    return _transition(
        version, actor=actor, allowed_from=(RubricState.SUBMITTED,), to=RubricState.REJECTED, note=note
    )


@transaction.atomic
def retire_rubric_version(
    version: RubricVersion, *, actor: AbstractBaseUser, note: str = ""
) -> RubricVersion:
    """Take a decided version out of use (judge graders move to the latest approved one)."""
    _require_owner(version, actor, "retire a version")
    return _transition(
        version,
        actor=actor,
        allowed_from=(RubricState.APPROVED, RubricState.REJECTED),
        to=RubricState.RETIRED,
        note=note or "retired",
    )
