"""Issue 12: outputs in pages. The check's run waits for the last page; pages are validated on
arrival, idempotent, and accepted only from whoever requested the check."""

from datetime import timedelta

import pytest
from django.utils import timezone

from gates_app.models import Check
from grading_app.models import Run, SubmittedOutput
from grading_app.reaper import reap
from tests.factories import make_scenario, make_token, outputs_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    s = make_scenario(n_trusted=6, n_monitoring=0)
    s["secret"] = make_token([s["gate"]])
    s["outputs"] = outputs_for(s["cases"])
    return s


def auth(secret):
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def start(api_client, world, pages=3, **extra):
    body = {"candidate": "v1", "outputs": world["outputs"][:2], "outputs_pages": pages, **extra}
    response = api_client.post(
        f"/api/v1/gates/{world['gate'].slug}/checks/", body, format="json", **auth(world["secret"])
    )
    assert response.status_code == 202, response.content
    return response.json()


def page(api_client, check_id, number, outputs, secret):
    return api_client.post(
        f"/api/v1/checks/{check_id}/outputs/",
        {"page": number, "outputs": outputs},
        format="json",
        **auth(secret),
    )


def test_the_run_starts_with_the_last_page_and_the_verdict_covers_every_page(
    api_client, world, django_capture_on_commit_callbacks
):
    accepted = start(api_client, world)
    assert accepted["upload"] == {"pages": 3, "received": 1, "complete": False}
    assert Run.objects.get().status == "waiting"

    second = page(api_client, accepted["id"], 3, world["outputs"][4:], world["secret"])  # any order
    assert second.json()["upload"] == {"pages": 3, "received": 2, "complete": False}
    with django_capture_on_commit_callbacks(execute=True):
        last = page(api_client, accepted["id"], 2, world["outputs"][2:4], world["secret"])

    assert last.status_code == 200, last.content
    assert last.json()["upload"]["complete"] is True
    check = Check.objects.get(pk=accepted["id"])
    assert (check.status, check.verdict) == ("done", "pass")
    assert check.run.total_cases == 6 and SubmittedOutput.objects.filter(run=check.run).count() == 6


def test_a_page_sent_again_is_a_no_op_and_with_other_outputs_a_422(api_client, world):
    accepted = start(api_client, world)
    assert page(api_client, accepted["id"], 2, world["outputs"][2:4], world["secret"]).status_code == 200
    again = page(api_client, accepted["id"], 2, world["outputs"][2:4], world["secret"])
    assert again.status_code == 200
    assert again.json()["upload"]["received"] == 2

    other = page(api_client, accepted["id"], 2, world["outputs"][4:], world["secret"])
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "page_conflict"


def test_pages_are_validated_on_arrival_and_a_case_counts_once_across_pages(api_client, world):
    accepted = start(api_client, world)
    twice = page(api_client, accepted["id"], 2, world["outputs"][:1], world["secret"])
    assert twice.status_code == 400
    assert "already submitted for case(s): t0" in twice.json()["error"]["details"]["outputs"][0]
    unknown = page(api_client, accepted["id"], 2, [{"case": "nope", "output": "No"}], world["secret"])
    assert "Unknown case key" in unknown.json()["error"]["details"]["outputs"][0]
    bad = page(api_client, accepted["id"], 2, [{"case": "t2"}], world["secret"])
    assert bad.json()["error"]["details"] == {
        "outputs[0].output": ["Required: text or a JSON object (null if none)."]
    }
    beyond = page(api_client, accepted["id"], 4, world["outputs"][2:4], world["secret"])
    assert "numbered 1 to 3" in beyond.json()["error"]["details"]["page"][0]
    assert SubmittedOutput.objects.count() == 2  # nothing of the refused pages was written


def test_only_the_requester_sends_pages(api_client, world):
    accepted = start(api_client, world)
    other_token = make_token([world["gate"]])

    response = page(api_client, accepted["id"], 2, world["outputs"][2:4], other_token)

    assert response.status_code == 403
    assert SubmittedOutput.objects.count() == 2


def test_a_check_that_took_its_outputs_whole_takes_no_pages(api_client, world):
    body = {"candidate": "v1", "outputs": world["outputs"]}
    accepted = api_client.post(
        f"/api/v1/gates/{world['gate'].slug}/checks/", body, format="json", **auth(world["secret"])
    ).json()
    assert "upload" not in accepted

    response = page(api_client, accepted["id"], 2, world["outputs"][:1], world["secret"])

    assert response.status_code == 400
    assert "takes no pages" in response.json()["error"]["message"]


def test_an_abandoned_upload_ends_inconclusive(
    api_client, world, settings, django_capture_on_commit_callbacks
):
    accepted = start(api_client, world)
    Run.objects.update(created_at=timezone.now() - timedelta(seconds=settings.EVALGATE_UPLOAD_TTL_S + 1))

    with django_capture_on_commit_callbacks(execute=True):
        report = reap()

    assert report.expired == [Check.objects.get(pk=accepted["id"]).run_id]
    check = Check.objects.get(pk=accepted["id"])
    assert (check.status, check.verdict, check.run.status) == ("done", "inconclusive", "cancelled")
    assert "never all arrived" in check.run.error
