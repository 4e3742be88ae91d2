"""Admin walk H1: the Owner field of the rubric, gate and dataset forms was an autocomplete (or
raw-id lookup) of users that answers 403 to anyone without permission to view users, which no
role has: only superusers could create rubrics and gates. It is now a plain list of the people
eligible to own, the requesting user chosen by default, and still no role may view users."""

import re

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from datasets_app.models import Dataset
from gates_app.models import Gate
from grading_app.models import Rubric
from tests.factories import make_dataset, make_user

pytestmark = pytest.mark.django_db
NO_VERSIONS = {"versions-TOTAL_FORMS": 0, "versions-INITIAL_FORMS": 0}  # the read-only inline


def owner_options(html: str) -> tuple[list[str], str | None]:
    """(every option's label, the selected one's) of the form's owner select."""
    select = re.search(r'<select name="owner"[^>]*>(.*?)</select>', html, re.S)
    assert select, "the owner field is a plain select"
    options = re.findall(r'<option value="(\d*)"( selected)?>([^<]*)</option>', select.group(1))
    labels = [label for value, _, label in options if value]
    chosen = next((label for value, selected, label in options if selected and value), None)
    return labels, chosen


def test_no_role_may_view_users():
    assert not Group.objects.filter(permissions__content_type__app_label="auth").exists()


def test_a_rubric_owner_creates_a_rubric_owned_by_themselves(client, rubric_owner, expert):
    colleague = make_user("colleague", roles=("Rubric owner",), is_staff=True)
    client.force_login(rubric_owner)
    url = reverse("admin:grading_app_rubric_add")

    labels, chosen = owner_options(client.get(url).content.decode())
    response = client.post(url, {"slug": "tone", "name": "Tone", "owner": rubric_owner.pk, **NO_VERSIONS})

    assert (labels, chosen) == (["colleague", "rubric_owner"], "rubric_owner")  # no expert: not eligible
    assert response.status_code == 302
    assert Rubric.objects.get(slug="tone").owner == rubric_owner
    assert colleague.pk  # listed above because their role may change rubrics


def test_a_raw_id_of_someone_who_cannot_own_is_refused_by_the_form(client, rubric_owner, expert):
    client.force_login(rubric_owner)

    response = client.post(
        reverse("admin:grading_app_rubric_add"),
        {"slug": "tone", "name": "Tone", "owner": expert.pk, **NO_VERSIONS},
    )

    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not Rubric.objects.exists()


def test_a_gate_owner_creates_a_gate_owned_by_themselves(client, gate_owner, rubric_owner, dataset_owner):
    make_user("colleague", roles=("Gate owner",), is_staff=True)
    make_user("gone", roles=("Gate owner",), is_active=False)  # deactivated: owns nothing new
    dataset = make_dataset("support")
    client.force_login(gate_owner)
    url = reverse("admin:gates_app_gate_add")

    labels, chosen = owner_options(client.get(url).content.decode())
    response = client.post(
        url,
        {
            "slug": "release",
            "name": "Release",
            "owner": gate_owner.pk,
            "dataset": dataset.pk,
            "required_approvals": 1,
            "missing_tolerance": 0,
            "production_window_hours": 24,
            "production_min_traces": 100,
            "active": "on",
            "rules-TOTAL_FORMS": 0,
            "rules-INITIAL_FORMS": 0,
        },
    )

    assert (labels, chosen) == (["colleague", "gate_owner"], "gate_owner")
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Gate.objects.get(slug="release").owner == gate_owner


def test_a_dataset_owner_creates_a_dataset_owned_by_themselves(client, dataset_owner, expert, gate_owner):
    client.force_login(dataset_owner)
    url = reverse("admin:datasets_app_dataset_add")

    labels, chosen = owner_options(client.get(url).content.decode())
    response = client.post(url, {"slug": "support", "name": "Support", "owner": dataset_owner.pk})

    assert (labels, chosen) == (["dataset_owner"], "dataset_owner")
    assert response.status_code == 302
    assert Dataset.objects.get(slug="support").owner == dataset_owner


def test_a_superuser_may_name_any_active_user(client, expert):
    root = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(root)

    labels, chosen = owner_options(client.get(reverse("admin:gates_app_gate_add")).content.decode())

    assert (labels, chosen) == (["expert", "root"], "root")


def test_the_current_owner_stays_listed_when_they_no_longer_hold_the_role(client, rubric_owner):
    left = make_user("left", is_staff=True)  # held the role once; the rubric is still theirs
    rubric = Rubric.objects.create(slug="tone", name="Tone", owner=left)
    rubric.co_owners.set([rubric_owner])
    client.force_login(rubric_owner)

    labels, chosen = owner_options(
        client.get(reverse("admin:grading_app_rubric_change", args=[rubric.pk])).content.decode()
    )

    assert (labels, chosen) == (["left", "rubric_owner"], "left")
