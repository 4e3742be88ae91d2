"""Issue 11, finding 10: a CI re-run of the same request gets the decided check, approvals
included, unless something that decides the verdict changed since."""

import pytest

from datasets_app import services as datasets
from gates_app.models import Check
from gates_app.services import approve_check, request_check, save_gate
from grading_app.models import Run
from tests.factories import make_scenario, make_token, outputs_for

pytestmark = pytest.mark.django_db


def post(api_client, s, secret, outputs, key=""):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    if key:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    body = {"candidate": "sha-1", "outputs": outputs}
    response = api_client.post(f"/api/v1/gates/{s['gate'].slug}/checks/", body, format="json", **headers)
    assert response.status_code == 202, response.content
    return response.json()["id"]


@pytest.fixture
def world(approver, django_capture_on_commit_callbacks):
    s = make_scenario()
    s["gate"].approvers.add(approver)
    s["secret"] = make_token([s["gate"]])
    s["outputs"] = outputs_for(s["cases"], latency_ms=5000)  # a warn
    s["capture"] = django_capture_on_commit_callbacks
    return s


def test_a_re_run_after_an_approval_gets_the_approved_check(api_client, world, approver):
    with world["capture"](execute=True):
        first = post(api_client, world, world["secret"], world["outputs"], key="ci-run-1")
    check = Check.objects.get(pk=first)
    assert check.verdict == "warn"
    approve_check(check, actor=approver, reason="cold cache after the deploy")

    with world["capture"](execute=True):
        again = post(api_client, world, world["secret"], world["outputs"], key="ci-run-2")

    assert again == first
    assert Check.objects.count() == Run.objects.count() == 1
    body = api_client.get(f"/api/v1/checks/{again}/", HTTP_AUTHORIZATION=f"Bearer {world['secret']}").json()
    assert (body["verdict"], body["release_allowed"]) == ("warn", True)


def test_other_outputs_are_a_new_check(api_client, world):
    with world["capture"](execute=True):
        first = post(api_client, world, world["secret"], world["outputs"])
        second = post(api_client, world, world["secret"], outputs_for(world["cases"], latency_ms=4999))
    assert first != second


@pytest.mark.parametrize("change", ["rule", "case", "gate"])
def test_a_change_to_what_decides_the_verdict_asks_again(api_client, world, change, reviewer):
    with world["capture"](execute=True):
        first = post(api_client, world, world["secret"], world["outputs"])
    if change == "rule":
        rules = [
            {"name": "latency budget", "metric": "latency_p95_ms", "threshold": 9000, "severity": "warn"}
        ]
        save_gate(slug=world["gate"].slug, rules=rules, actor=world["owner"])
    elif change == "case":
        case = datasets.edit_case(world["cases"][0], actor=reviewer, tags=["refunds"])
        assert case.status == "in_review"
    else:
        save_gate(slug=world["gate"].slug, actor=world["owner"], warnings_need_approval=False)

    with world["capture"](execute=True):
        second = post(api_client, world, world["secret"], world["outputs"])

    assert second != first


def test_a_run_that_failed_is_tried_again(world):
    with world["capture"](execute=True):
        first, _ = request_check(gate=world["gate"], candidate="sha-1", outputs=world["outputs"])
    Run.objects.filter(pk=first.run_id).update(status="failed")

    with world["capture"](execute=True):
        second, created = request_check(gate=world["gate"], candidate="sha-1", outputs=world["outputs"])

    assert created and second.pk != first.pk
