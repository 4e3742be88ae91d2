"""Cancelling a check's run from the API or the admin: never a pass, and nothing more runs."""

import pytest
from django.urls import reverse

from gates_app.choices import Verdict
from gates_app.models import Check
from gates_app.services import request_check
from grading_app.choices import RunStatus
from grading_app.models import CaseResult
from tests.factories import make_scenario, make_token, make_user, outputs_for

pytestmark = pytest.mark.django_db


def queued_check():
    s = make_scenario()
    # No commit in a test transaction: the jobs never run, the check stays queued.
    check, _ = request_check(gate=s["gate"], candidate="v1", outputs=outputs_for(s["cases"]))
    return s, check


def test_a_deploy_token_cancels_its_check_which_becomes_inconclusive(api_client):
    s, check = queued_check()
    secret = make_token([s["gate"]])
    response = api_client.post(
        f"/api/v1/checks/{check.pk}/cancel/",
        {"reason": "superseded"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["verdict"], body["release_allowed"]) == ("done", "inconclusive", False)
    check = Check.objects.select_related("run").get(pk=check.pk)
    assert check.run.status == RunStatus.CANCELLED
    assert "superseded" in check.run.error
    assert CaseResult.objects.filter(run=check.run).count() == 0


def test_cancelling_twice_or_a_decided_check_is_a_400(api_client):
    s, check = queued_check()
    secret = make_token([s["gate"]])
    url = f"/api/v1/checks/{check.pk}/cancel/"
    assert api_client.post(url, {}, format="json", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200
    again = api_client.post(url, {}, format="json", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid"


def test_a_read_only_token_cannot_cancel(api_client):
    s, check = queued_check()
    secret = make_token([s["gate"]], scopes=["checks:read"])
    response = api_client.post(
        f"/api/v1/checks/{check.pk}/cancel/", {}, format="json", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert response.status_code == 403
    assert Check.objects.get(pk=check.pk).verdict == Verdict.PENDING


def test_the_admin_cancels_a_run_after_confirmation(client):
    _, check = queued_check()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    url = reverse("admin:grading_app_run_changelist")
    data = {"action": "cancel", "_selected_action": [check.run_id]}
    confirm = client.post(url, data)
    assert confirm.status_code == 200 and b"Cancel runs" in confirm.content
    assert Check.objects.get(pk=check.pk).run.status == RunStatus.QUEUED
    client.post(url, {**data, "confirmed": "yes", "reason": "wrong dataset"})
    check = Check.objects.select_related("run").get(pk=check.pk)
    assert check.run.status == RunStatus.CANCELLED
    assert check.verdict == Verdict.INCONCLUSIVE
