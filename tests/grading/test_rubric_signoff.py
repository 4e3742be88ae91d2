"""Rubric version sign-off: who may decide, what freezes, what is recorded, which version runs use."""

from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from grading_app import services
from grading_app.choices import RubricState
from grading_app.models import Endpoint, Rubric, RubricVersion
from tests.factories import make_grader, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint() -> Endpoint:
    return services.save_endpoint(name="judge", base_url="http://127.0.0.1:9/v1")


@pytest.fixture
def author() -> AbstractUser:
    return make_user("author", roles=("Rubric owner",), is_staff=True)


@pytest.fixture
def rubric(rubric_owner: AbstractUser) -> Rubric:
    return services.save_rubric(slug="refunds", name="Refund answers", owner=rubric_owner)


def new_version(rubric: Rubric, actor: AbstractUser, endpoint: Endpoint, **fields: Any) -> RubricVersion:
    fields.setdefault("criteria", "Says no to refunds after 30 days.")
    return services.create_rubric_version(rubric, actor=actor, endpoint=endpoint, model="judge-1", **fields)


def submitted(rubric: Rubric, actor: AbstractUser, endpoint: Endpoint, **fields: Any) -> RubricVersion:
    return services.submit_rubric_version(new_version(rubric, actor, endpoint, **fields), actor=actor)


def approved(rubric: Rubric, author: AbstractUser, endpoint: Endpoint, **fields: Any) -> RubricVersion:
    version = submitted(rubric, author, endpoint, **fields)
    return services.approve_rubric_version(version, actor=rubric.owner)


def state_of(version: RubricVersion) -> str:
    return RubricVersion.objects.get(pk=version.pk).state


# --- who decides -------------------------------------------------------------------------


def test_author_cannot_approve_own_rubric_version_even_as_owner(rubric, rubric_owner, endpoint):
    version = submitted(rubric, rubric_owner, endpoint)
    with pytest.raises(PermissionDenied, match="someone else"):
        services.approve_rubric_version(version, actor=rubric_owner)
    assert state_of(version) == RubricState.SUBMITTED
    assert not version.events.filter(to_state=RubricState.APPROVED).exists()


def test_non_owner_cannot_approve_a_rubric_version(rubric, author, endpoint):
    version = submitted(rubric, author, endpoint)
    other_rubric_owner = make_user(roles=("Rubric owner",))
    for actor in (other_rubric_owner, author):
        with pytest.raises(PermissionDenied, match="owner"):
            services.approve_rubric_version(version, actor=actor)
    assert state_of(version) == RubricState.SUBMITTED


def test_owner_approves_someone_elses_submitted_version(rubric, rubric_owner, author, endpoint):
    version = submitted(rubric, author, endpoint)
    services.approve_rubric_version(version, actor=rubric_owner, note="matches the policy")
    assert state_of(version) == RubricState.APPROVED


def test_only_submitted_versions_can_be_approved(rubric, rubric_owner, author, endpoint):
    draft = new_version(rubric, author, endpoint)
    with pytest.raises(ValidationError, match="draft"):
        services.approve_rubric_version(draft, actor=rubric_owner)
    assert state_of(draft) == RubricState.DRAFT


@pytest.mark.parametrize("note", ["", "   \n"])
def test_reject_needs_a_note(rubric, rubric_owner, author, endpoint, note):
    version = submitted(rubric, author, endpoint)
    with pytest.raises(ValidationError) as excinfo:
        services.reject_rubric_version(version, actor=rubric_owner, note=note)
    assert "note" in excinfo.value.message_dict
    assert state_of(version) == RubricState.SUBMITTED
    services.reject_rubric_version(version, actor=rubric_owner, note="Too lenient on partial refunds.")
    assert state_of(version) == RubricState.REJECTED


def test_non_owner_cannot_reject_or_retire(rubric, author, endpoint):
    version = submitted(rubric, author, endpoint)
    with pytest.raises(PermissionDenied):
        services.reject_rubric_version(version, actor=author, note="I changed my mind")
    assert state_of(version) == RubricState.SUBMITTED


# --- immutability ------------------------------------------------------------------------


@pytest.mark.parametrize("decided", ["submitted", "approved"])
def test_submitted_and_approved_versions_cannot_be_edited(rubric, author, endpoint, decided):
    version = submitted(rubric, author, endpoint)
    if decided == "approved":
        services.approve_rubric_version(version, actor=rubric.owner)
    for actor in (author, rubric.owner):
        with pytest.raises(ValidationError, match="new version"):
            services.edit_rubric_version(version, actor=actor, criteria="Anything goes.", pass_threshold=0.1)
    version.refresh_from_db()
    assert (version.criteria, version.pass_threshold) == ("Says no to refunds after 30 days.", 1.0)


def test_draft_can_be_edited_by_its_author(rubric, author, endpoint):
    version = new_version(rubric, author, endpoint)
    services.edit_rubric_version(version, actor=author, criteria="Says no, and cites the policy.")
    assert RubricVersion.objects.get(pk=version.pk).criteria == "Says no, and cites the policy."


def change_form_post(version: RubricVersion, **changes: Any) -> dict[str, Any]:
    """Everything the change form would carry if its fields were editable, with ``changes``."""
    data = {
        "rubric": version.rubric_id,
        "criteria": version.criteria,
        "scale": version.scale,
        "pass_threshold": version.pass_threshold,
        "endpoint": version.endpoint_id,
        "model": version.model,
        "prompt_template": version.prompt_template,
        "few_shot": "[]",
        "_save": "Save",
    }
    return {**data, **changes}


@pytest.mark.parametrize("decided", ["submitted", "approved"])
def test_admin_shows_a_submitted_version_read_only_and_a_post_changes_nothing(
    client, rubric, author, endpoint, decided
):
    version = submitted(rubric, author, endpoint)
    if decided == "approved":
        services.approve_rubric_version(version, actor=rubric.owner)
    url = reverse("admin:grading_app_rubricversion_change", args=[version.pk])
    for user in (author, rubric.owner):
        client.force_login(user)
        page = client.get(url)
        assert page.status_code == 200
        html = page.content.decode()
        assert 'name="criteria"' not in html
        assert 'name="pass_threshold"' not in html
        assert "Says no to refunds after 30 days." in html  # shown, as text

        response = client.post(
            url, change_form_post(version, criteria="Anything goes.", pass_threshold="0.1")
        )
        assert response.status_code == 403
    version.refresh_from_db()
    assert (version.criteria, version.pass_threshold, version.state) == (
        "Says no to refunds after 30 days.",
        1.0,
        decided,
    )


def test_admin_change_page_of_a_draft_is_editable_by_its_author(client, rubric, author, endpoint):
    version = new_version(rubric, author, endpoint)
    client.force_login(author)
    url = reverse("admin:grading_app_rubricversion_change", args=[version.pk])
    assert 'name="criteria"' in client.get(url).content.decode()
    response = client.post(url, change_form_post(version, criteria="Says no, and cites the policy."))
    assert response.status_code == 302
    assert RubricVersion.objects.get(pk=version.pk).criteria == "Says no, and cites the policy."


# --- numbering and the trail -------------------------------------------------------------


def test_version_numbers_increment_per_rubric(rubric, author, endpoint):
    numbers = [new_version(rubric, author, endpoint).number for _ in range(3)]
    other = services.save_rubric(slug="citations", name="Citations", owner=rubric.owner)
    assert numbers == [1, 2, 3]
    assert new_version(other, author, endpoint).number == 1
    assert new_version(rubric, author, endpoint).number == 4


def test_every_transition_records_who_when_from_to_and_note(rubric, rubric_owner, author, endpoint):
    before = timezone.now()
    rejected = new_version(rubric, author, endpoint)
    services.submit_rubric_version(rejected, actor=author, note="ready")
    services.reject_rubric_version(rejected, actor=rubric_owner, note="Too lenient.")
    services.retire_rubric_version(rejected, actor=rubric_owner, note="superseded by v2")
    kept = submitted(rubric, author, endpoint)
    services.approve_rubric_version(kept, actor=rubric_owner, note="matches the policy")
    after = timezone.now()

    trail = [(e.from_state, e.to_state, e.actor, e.note) for e in rejected.events.all()]
    assert trail == [
        ("", RubricState.DRAFT, author, "created"),
        (RubricState.DRAFT, RubricState.SUBMITTED, author, "ready"),
        (RubricState.SUBMITTED, RubricState.REJECTED, rubric_owner, "Too lenient."),
        (RubricState.REJECTED, RubricState.RETIRED, rubric_owner, "superseded by v2"),
    ]
    assert [(e.from_state, e.to_state, e.actor, e.note) for e in kept.events.all()][-1] == (
        RubricState.SUBMITTED,
        RubricState.APPROVED,
        rubric_owner,
        "matches the policy",
    )
    for event in [*rejected.events.all(), *kept.events.all()]:
        assert before <= event.created_at <= after


def test_a_refused_transition_records_no_event(rubric, rubric_owner, endpoint):
    version = submitted(rubric, rubric_owner, endpoint)
    count = version.events.count()
    with pytest.raises(PermissionDenied):
        services.approve_rubric_version(version, actor=rubric_owner)
    with pytest.raises(ValidationError):
        services.retire_rubric_version(version, actor=rubric_owner)
    assert version.events.count() == count


@pytest.mark.parametrize("state", ["draft", "submitted"])
def test_undecided_versions_cannot_be_retired(rubric, rubric_owner, author, endpoint, state):
    version = new_version(rubric, author, endpoint)
    if state == "submitted":
        services.submit_rubric_version(version, actor=author)
    with pytest.raises(ValidationError, match="cannot move it to retired"):
        services.retire_rubric_version(version, actor=rubric_owner)
    assert state_of(version) == state


def test_approved_and_rejected_versions_can_be_retired_once(rubric, rubric_owner, author, endpoint):
    good = approved(rubric, author, endpoint)
    bad = submitted(rubric, author, endpoint)
    services.reject_rubric_version(bad, actor=rubric_owner, note="Too lenient.")
    for version in (good, bad):
        services.retire_rubric_version(version, actor=rubric_owner)
        assert state_of(version) == RubricState.RETIRED
        with pytest.raises(ValidationError):
            services.retire_rubric_version(version, actor=rubric_owner)


# --- which version a judge grader uses ---------------------------------------------------


def test_rubric_version_for_prefers_latest_approved_over_newer_drafts_and_retired(
    rubric, rubric_owner, author, endpoint
):
    grader = make_grader("judge", kind="llm_judge", rubric=rubric)
    v1 = approved(rubric, author, endpoint)
    v2 = approved(rubric, author, endpoint)
    v3 = new_version(rubric, author, endpoint)
    v4 = approved(rubric, author, endpoint)
    services.retire_rubric_version(v4, actor=rubric_owner)
    assert services.rubric_version_for(grader) == v2

    # With no approved version left, the latest version that is not retired (a draft here).
    services.retire_rubric_version(v2, actor=rubric_owner)
    assert services.rubric_version_for(grader) == v1
    services.retire_rubric_version(v1, actor=rubric_owner)
    assert services.rubric_version_for(grader) == v3


def test_rubric_version_for_uses_the_pinned_version_first(rubric, author, endpoint):
    v1 = approved(rubric, author, endpoint)
    approved(rubric, author, endpoint)
    grader = make_grader("judge", kind="llm_judge", rubric=rubric, rubric_version=v1)
    assert services.rubric_version_for(grader) == v1


def test_rubric_version_for_is_none_without_versions_or_rubric(rubric):
    assert services.rubric_version_for(make_grader("judge", kind="llm_judge", rubric=rubric)) is None
    assert services.rubric_version_for(make_grader()) is None


# --- the admin: two-step actions and the compare view ------------------------------------


def run_action(client, action: str, version: RubricVersion, **extra: str):
    url = reverse("admin:grading_app_rubricversion_changelist")
    return client.post(url, {"action": action, "_selected_action": [version.pk], **extra}, follow=True)


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_admin_approve_asks_for_confirmation_then_approves_someone_elses_version(
    client, rubric, rubric_owner, author, endpoint
):
    version = submitted(rubric, author, endpoint)
    client.force_login(rubric_owner)

    first = run_action(client, "approve", version)
    assert first.status_code == 200
    assert first.templates[0].name == "admin/evalgate_confirm_action.html"
    assert 'name="confirmed" value="yes"' in first.content.decode()
    assert state_of(version) == RubricState.SUBMITTED  # nothing happens before confirmation

    second = run_action(client, "approve", version, confirmed="yes", reason="Matches the refund policy.")
    assert second.redirect_chain[-1][0] == reverse("admin:grading_app_rubricversion_changelist")
    assert state_of(version) == RubricState.APPROVED
    event = version.events.last()
    assert (event.actor, event.to_state, event.note) == (
        rubric_owner,
        RubricState.APPROVED,
        "Matches the refund policy.",
    )
    assert "Approve 1 item(s)." in page_messages(second)


def test_admin_approve_of_the_owners_own_version_shows_an_error_and_leaves_it_submitted(
    client, rubric, rubric_owner, endpoint
):
    version = submitted(rubric, rubric_owner, endpoint)
    client.force_login(rubric_owner)
    response = run_action(client, "approve", version, confirmed="yes", reason="I like it.")
    assert response.status_code == 200
    assert state_of(version) == RubricState.SUBMITTED
    errors = page_messages(response)
    assert any("refunds v1" in m and "someone else must sign it off" in m for m in errors), errors
    assert not any("Approve 1 item(s)" in m for m in errors)


def test_admin_reject_without_a_reason_stays_on_the_confirmation_page(
    client, rubric, rubric_owner, author, endpoint
):
    version = submitted(rubric, author, endpoint)
    client.force_login(rubric_owner)
    response = run_action(client, "reject", version, confirmed="yes", reason="  ")
    assert response.templates[0].name == "admin/evalgate_confirm_action.html"
    assert "Please write a reason" in " ".join(page_messages(response))
    assert state_of(version) == RubricState.SUBMITTED


def test_compare_view_shows_the_changed_fields_only(client, rubric, rubric_owner, author, endpoint):
    v1 = new_version(rubric, author, endpoint, criteria="Says no to refunds after 30 days.")
    v2 = new_version(
        rubric,
        author,
        endpoint,
        criteria="Says no to refunds after 30 days.\nCites the refund policy by name.",
        pass_threshold=0.8,
    )
    client.force_login(rubric_owner)
    url = reverse("admin:grading_app_rubricversion_compare", args=[v2.pk, v1.pk])
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert [field for field, _ in response.context["sections"]] == ["criteria", "pass_threshold"]
    assert "<h2>criteria</h2>" in html
    assert "<h2>model</h2>" not in html
    assert 'class="diff"' in html
    assert "Cites&nbsp;the&nbsp;refund&nbsp;policy&nbsp;by&nbsp;name." in html  # the added line
    assert "refunds: v1 → v2" in html


def test_compare_view_refuses_versions_of_another_rubric(client, rubric, rubric_owner, author, endpoint):
    v1 = new_version(rubric, author, endpoint)
    other = services.save_rubric(slug="citations", name="Citations", owner=rubric_owner)
    foreign = new_version(other, author, endpoint)
    client.force_login(rubric_owner)
    url = reverse("admin:grading_app_rubricversion_compare", args=[foreign.pk, v1.pk])
    assert client.get(url).status_code == 404
