"""Issue 11, finding 4: an inconclusive check names the cases it lacked, in the API and the CLI."""

import pytest

from gates_app.client import render_table
from tests.factories import make_scenario, make_token, outputs_for

pytestmark = pytest.mark.django_db


def test_an_inconclusive_check_lists_its_missing_cases(api_client, django_capture_on_commit_callbacks):
    s = make_scenario()
    secret = make_token([s["gate"]])
    body = {"candidate": "v1", "outputs": outputs_for(s["cases"][1:])}  # t0 has no output
    with django_capture_on_commit_callbacks(execute=True):
        accepted = api_client.post(
            f"/api/v1/gates/{s['gate'].slug}/checks/",
            body,
            format="json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        ).json()

    check = api_client.get(accepted["url"], HTTP_AUTHORIZATION=f"Bearer {secret}").json()

    assert check["verdict"] == "inconclusive"
    assert check["missing_cases"] == {"count": 1, "keys": ["t0"]}
    assert "missing or errored cases (1): t0" in render_table(check)


def test_a_complete_check_lists_none(api_client, django_capture_on_commit_callbacks):
    s = make_scenario()
    secret = make_token([s["gate"]])
    body = {"candidate": "v1", "outputs": outputs_for(s["cases"])}
    with django_capture_on_commit_callbacks(execute=True):
        accepted = api_client.post(
            f"/api/v1/gates/{s['gate'].slug}/checks/",
            body,
            format="json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        ).json()

    check = api_client.get(accepted["url"], HTTP_AUTHORIZATION=f"Bearer {secret}").json()

    assert check["missing_cases"] == {"count": 0, "keys": []}
    assert "missing or errored" not in render_table(check)
