"""Issue 10, finding 2: nobody approves a check they requested; approvals are per person, and a
gate may require several distinct approvers (like required reviewers on a protected branch)."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from audit_app.models import AuditEvent
from gates_app.models import CheckDecision
from gates_app.services import approve_check, override_check, request_check
from gates_app.tokens import create_token
from tests.factories import make_scenario, make_user, outputs_for

pytestmark = pytest.mark.django_db


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def warn_outputs(s):
    return outputs_for(s["cases"], latency_ms=5000)  # right answers, over the latency budget


def post_check(api_client, s, secret):
    body = {"candidate": "v1", "outputs": warn_outputs(s)}
    response = api_client.post(
        f"/api/v1/gates/{s['gate'].slug}/checks/", body, format="json", **bearer(secret)
    )
    assert response.status_code == 202, response.content
    return response.json()["id"]


def decide(api_client, check_id, kind, secret, reason="looked at it"):
    return api_client.post(
        f"/api/v1/checks/{check_id}/{kind}/", {"reason": reason}, format="json", **bearer(secret)
    )


@pytest.fixture
def scenario(approver):
    s = make_scenario()
    s["gate"].approvers.add(approver)
    return s


def test_the_requester_of_a_check_cannot_approve_its_warn(
    api_client, scenario, approver, django_capture_on_commit_callbacks
):
    mine = create_token(name="laptop", user=approver, actor=approver)[1]
    with django_capture_on_commit_callbacks(execute=True):
        check_id = post_check(api_client, scenario, mine)

    response = decide(api_client, check_id, "approve", mine)

    assert response.status_code == 403, response.content
    assert "You requested this check" in response.json()["error"]["message"]
    assert not CheckDecision.objects.exists()


def test_the_requester_cannot_approve_in_the_admin_either(
    api_client, client, scenario, approver, django_capture_on_commit_callbacks
):
    mine = create_token(name="laptop", user=approver, actor=approver)[1]
    with django_capture_on_commit_callbacks(execute=True):
        check_id = post_check(api_client, scenario, mine)
    client.force_login(approver)

    response = client.post(
        reverse("admin:gates_app_check_changelist"),
        {"action": "approve", "_selected_action": [check_id], "confirmed": "yes", "reason": "fine"},
        follow=True,
    )

    assert any("You requested this check" in str(m) for m in response.context["messages"])
    assert not CheckDecision.objects.exists()


def test_the_issuer_of_the_deploy_token_that_requested_a_check_cannot_approve_it(
    api_client, scenario, approver, django_capture_on_commit_callbacks
):
    scenario["gate"].co_owners.add(approver)  # an owner may issue the gate's deploy tokens
    deploy = create_token(name="ci", gates=[scenario["gate"]], actor=approver)[1]
    with django_capture_on_commit_callbacks(execute=True):
        check_id = post_check(api_client, scenario, deploy)
    personal = create_token(name="laptop", user=approver, actor=approver)[1]

    response = decide(api_client, check_id, "approve", personal)

    assert response.status_code == 403
    # Someone else may: the gate's owner did not request it.
    owner = create_token(name="owner", user=scenario["owner"], actor=scenario["owner"])[1]
    assert decide(api_client, check_id, "approve", owner).status_code == 200


def test_the_same_person_cannot_approve_twice(
    api_client, scenario, approver, django_capture_on_commit_callbacks
):
    scenario["gate"].required_approvals = 2
    scenario["gate"].save()
    deploy = create_token(name="ci", gates=[scenario["gate"]], actor=None)[1]
    with django_capture_on_commit_callbacks(execute=True):
        check_id = post_check(api_client, scenario, deploy)
    personal = create_token(name="laptop", user=approver, actor=approver)[1]

    assert decide(api_client, check_id, "approve", personal).status_code == 200
    again = decide(api_client, check_id, "approve", personal, "still fine")

    assert again.status_code == 400
    assert "already approved" in again.json()["error"]["message"]
    body = api_client.get(f"/api/v1/checks/{check_id}/", **bearer(personal)).json()
    assert (
        body["release_allowed"],
        body["approval"]["approvals"],
        body["approval"]["required_approvals"],
    ) == (
        False,
        1,
        2,
    )


def test_the_database_refuses_a_second_approval_by_the_same_person(
    scenario, approver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        check, _ = request_check(gate=scenario["gate"], candidate="v1", outputs=warn_outputs(scenario))
    approve_check(check, actor=approver, reason="fine")

    with pytest.raises(IntegrityError), transaction.atomic():
        CheckDecision.objects.create(
            gate_check=check, kind="approve", actor=approver, actor_username="approver", reason="again"
        )


def test_a_gate_requiring_two_approvals_releases_after_two_distinct_people(
    scenario, approver, django_capture_on_commit_callbacks
):
    scenario["gate"].required_approvals = 2
    scenario["gate"].save()
    second = make_user("second-approver")
    scenario["gate"].approvers.add(second)
    with django_capture_on_commit_callbacks(execute=True):
        check, _ = request_check(gate=scenario["gate"], candidate="v1", outputs=warn_outputs(scenario))
    check.refresh_from_db()
    assert check.verdict == "warn"

    approve_check(check, actor=approver, reason="cold cache")
    check.refresh_from_db()
    assert check.release_allowed is False
    with pytest.raises(ValidationError):
        approve_check(check, actor=approver, reason="really")

    approve_check(check, actor=second, reason="agreed")
    check.refresh_from_db()
    assert check.release_allowed is True
    events = AuditEvent.objects.filter(action="check.approved").order_by("id")
    assert [(e.actor, e.details["approvals"], e.details["release_allowed"]) for e in events] == [
        (approver, 1, False),
        (second, 2, True),
    ]


def test_overrides_stay_owner_only_with_a_reason(scenario, approver, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        check, _ = request_check(
            gate=scenario["gate"], candidate="v1", outputs=outputs_for(scenario["cases"], "Yes")
        )
    check.refresh_from_db()
    assert check.verdict == "fail"

    with pytest.raises(PermissionDenied):
        override_check(check, actor=approver, reason="ship it")
    with pytest.raises(ValidationError):
        override_check(check, actor=scenario["owner"], reason="  ")
    scenario["gate"].co_owners.add(approver)
    override_check(check, actor=approver, reason="hotfix; the regression is a known flaky case")
    check.refresh_from_db()
    assert check.release_allowed is True
