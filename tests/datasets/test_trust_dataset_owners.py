"""Admin walk H2: a dataset's owner reviews its flagged traces and confirms its pinned-case
requests, so only its owner (or a superuser) changes it, its owner included, on every path,
and every owner change is an audit event."""

from io import StringIO

import pytest
import yaml
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.urls import reverse

from audit_app.choices import Action
from audit_app.models import AuditEvent
from datasets_app import services
from datasets_app.models import Dataset
from tests.factories import make_dataset, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob(db):
    return make_user("bob", roles=("Dataset owner",), is_staff=True)


@pytest.fixture
def bobs(bob):
    return make_dataset("support", owner=bob)


def owner_events(dataset: Dataset) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(action=Action.DATASET_CHANGED, object_id=str(dataset.pk)).order_by("id")
    )


def form_data(dataset: Dataset, **changes) -> dict:
    return {
        "slug": dataset.slug,
        "name": dataset.name,
        "description": dataset.description,
        "owner": dataset.owner_id or "",
        **changes,
    }


def test_the_service_refuses_taking_over_someone_elses_dataset(bobs, dataset_owner):
    with pytest.raises(PermissionDenied, match=r"Only the dataset's owner \(bob\) changes it"):
        services.save_dataset(slug="support", name="Support", owner=dataset_owner, actor=dataset_owner)

    assert Dataset.objects.get(pk=bobs.pk).owner.username == "bob"


def test_a_raw_owner_id_posted_to_the_admin_is_refused(client, bobs, dataset_owner):
    client.force_login(dataset_owner)
    url = reverse("admin:datasets_app_dataset_change", args=[bobs.pk])

    page = client.get(url)
    response = client.post(url, form_data(bobs, owner=dataset_owner.pk))

    assert page.status_code == 200 and b'name="_save"' not in page.content  # read-only for them
    assert response.status_code == 403
    assert Dataset.objects.get(pk=bobs.pk).owner_id == bobs.owner_id
    assert len(owner_events(bobs)) == 1  # the creation only


def test_a_config_applied_by_someone_else_cannot_take_the_dataset(tmp_path, bobs, dataset_owner):
    config = tmp_path / "evals.yaml"
    config.write_text(
        yaml.safe_dump({"datasets": [{"slug": "support", "name": "Support", "owner": "dataset_owner"}]})
    )

    with pytest.raises(CommandError) as failed:
        call_command("apply_config", str(config), "--as", "dataset_owner", stdout=StringIO())

    assert "datasets[0]: Only the dataset's owner (bob) changes it" in str(failed.value)
    assert Dataset.objects.get(pk=bobs.pk).owner.username == "bob"


def test_the_owner_hands_the_dataset_over_in_the_admin_and_it_is_audited(client, bobs, bob, dataset_owner):
    client.force_login(bob)
    url = reverse("admin:datasets_app_dataset_change", args=[bobs.pk])

    response = client.post(url, form_data(bobs, owner=dataset_owner.pk))

    assert response.status_code == 302
    assert Dataset.objects.get(pk=bobs.pk).owner_id == dataset_owner.pk
    event = owner_events(bobs)[-1]
    assert (event.actor_username, event.details["fields"]) == ("bob", {"owner": [bob.pk, dataset_owner.pk]})
    # And now bob is the outsider.
    with pytest.raises(PermissionDenied):
        services.save_dataset(slug="support", name="Support", owner=bob, actor=bob)


def test_a_change_that_leaves_the_owner_is_not_an_owner_event(client, bobs, bob):
    client.force_login(bob)
    url = reverse("admin:datasets_app_dataset_change", args=[bobs.pk])

    assert client.post(url, form_data(bobs, name="Support bot")).status_code == 302

    assert Dataset.objects.get(pk=bobs.pk).name == "Support bot"
    assert len(owner_events(bobs)) == 1


def test_a_dataset_nobody_owns_is_taken_on_by_the_role_only(expert, dataset_owner):
    orphan = make_dataset("orphan")

    with pytest.raises(PermissionDenied, match="the Dataset owner role may"):
        services.save_dataset(slug="orphan", name="orphan", owner=expert, actor=expert)
    services.save_dataset(slug="orphan", name="orphan", owner=dataset_owner, actor=dataset_owner)

    assert owner_events(orphan)[-1].details["fields"] == {"owner": [None, dataset_owner.pk]}


def test_a_superuser_hands_any_dataset_over(client, bobs, dataset_owner):
    root = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(root)
    url = reverse("admin:datasets_app_dataset_change", args=[bobs.pk])

    assert client.post(url, form_data(bobs, owner=dataset_owner.pk)).status_code == 302

    assert Dataset.objects.get(pk=bobs.pk).owner_id == dataset_owner.pk
    assert owner_events(bobs)[-1].actor_username == "root"
