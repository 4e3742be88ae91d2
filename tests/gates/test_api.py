"""The public API v1 contract: auth, visibility, error shape, field names, idempotency."""

from datetime import timedelta

import pytest
from django.utils import timezone

from gates_app.choices import Verdict
from gates_app.models import Check, DeployToken
from grading_app.models import CaseResult, Run
from tests.factories import make_dataset, make_gate, make_scenario, make_token, outputs_for

pytestmark = pytest.mark.django_db

CHECK_FIELDS = {
    "id",
    "gate",
    "candidate",
    "status",
    "verdict",
    "release_allowed",
    "progress",
    "rules",
    "trace_deltas",
    "run",
    "approval",
    "admin_url",
}
RULE_FIELDS = {"name", "metric", "severity", "outcome", "value", "baseline", "threshold", "interval", "n"}


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def assert_error_shape(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def post_check(client, gate, secret, body, **headers):
    return client.post(f"/api/v1/gates/{gate.slug}/checks/", body, format="json", **bearer(secret), **headers)


def test_good_check_over_http_returns_contract_fields_and_passes(
    api_client, django_capture_on_commit_callbacks
):
    s = make_scenario()
    secret = make_token([s["gate"]])
    with django_capture_on_commit_callbacks(execute=True):
        response = post_check(
            api_client, s["gate"], secret, {"candidate": "abc123", "outputs": outputs_for(s["cases"])}
        )
    assert response.status_code == 202
    accepted = response.json()
    assert set(accepted) == {"id", "status", "verdict", "url"}
    assert accepted["verdict"] == "pending"
    assert accepted["url"].endswith(f"/api/v1/checks/{accepted['id']}/")

    check = api_client.get(accepted["url"], **bearer(secret)).json()
    assert set(check) >= CHECK_FIELDS
    assert check["gate"] == s["gate"].slug
    assert check["candidate"] == "abc123"
    assert check["status"] == "done"
    assert check["verdict"] == "pass"
    assert check["release_allowed"] is True
    assert check["progress"] == {"done": 6, "total": 6}
    assert [r["name"] for r in check["rules"]] == ["trusted accuracy", "latency budget"]
    for rule in check["rules"]:
        assert set(rule) >= RULE_FIELDS
    accuracy = check["rules"][0]
    assert accuracy["value"] == 1.0 and accuracy["n"] == 4 and accuracy["outcome"] == "pass"
    assert accuracy["interval"][1] == 1.0 and accuracy["interval"][0] < 1.0
    assert check["admin_url"].endswith(f"/admin/gates_app/check/{accepted['id']}/change/")


def test_wrong_answers_fail_the_block_rule(api_client, django_capture_on_commit_callbacks):
    s = make_scenario()
    secret = make_token([s["gate"]])
    with django_capture_on_commit_callbacks(execute=True):
        response = post_check(
            api_client,
            s["gate"],
            secret,
            {"candidate": "bad", "outputs": outputs_for(s["cases"], answer="Yes")},
        )
    check = api_client.get(response.json()["url"], **bearer(secret)).json()
    assert check["verdict"] == "fail"
    assert check["release_allowed"] is False
    assert check["rules"][0]["outcome"] == "fail"


def test_slow_candidate_warns_and_is_not_released_without_approval(
    api_client, django_capture_on_commit_callbacks
):
    s = make_scenario()
    secret = make_token([s["gate"]])
    with django_capture_on_commit_callbacks(execute=True):
        response = post_check(
            api_client,
            s["gate"],
            secret,
            {"candidate": "slow", "outputs": outputs_for(s["cases"], latency_ms=5000)},
        )
    check = api_client.get(response.json()["url"], **bearer(secret)).json()
    assert check["verdict"] == "warn"
    assert check["release_allowed"] is False
    assert check["approval"]["required"] is True


def test_missing_trusted_outputs_make_the_check_inconclusive(api_client, django_capture_on_commit_callbacks):
    s = make_scenario()
    secret = make_token([s["gate"]])
    with django_capture_on_commit_callbacks(execute=True):
        response = post_check(
            api_client, s["gate"], secret, {"candidate": "partial", "outputs": outputs_for(s["cases"][1:])}
        )
    check = api_client.get(response.json()["url"], **bearer(secret)).json()
    assert check["verdict"] == "inconclusive"
    assert check["rules"][0]["outcome"] == "undecided"
    assert "1 missing" in check["rules"][0]["note"]


def test_request_without_token_is_401_with_error_shape(api_client):
    s = make_scenario()
    response = api_client.get("/api/v1/gates/")
    assert_error_shape(response, 401, "unauthenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")
    response = post_check(api_client, s["gate"], "egt_nothing_here", {"candidate": "x", "outputs": []})
    assert_error_shape(response, 401, "unauthenticated")


def test_revoked_and_expired_tokens_are_401(api_client):
    s = make_scenario()
    revoked, expired = make_token([s["gate"]]), make_token([s["gate"]])
    DeployToken.objects.filter(prefix=revoked.split("_")[1]).update(revoked_at=timezone.now())
    DeployToken.objects.filter(prefix=expired.split("_")[1]).update(
        expires_at=timezone.now() - timedelta(days=1)
    )
    for secret in (revoked, expired):
        assert_error_shape(api_client.get("/api/v1/gates/", **bearer(secret)), 401, "unauthenticated")


def test_token_for_gate_a_gets_404_on_gate_b(api_client, django_capture_on_commit_callbacks):
    a = make_scenario()
    b_gate = make_gate(make_dataset(), slug="gate-b")
    b_secret = make_token([b_gate])
    a_secret = make_token([a["gate"]])
    with django_capture_on_commit_callbacks(execute=True):
        a_check = post_check(
            api_client, a["gate"], a_secret, {"candidate": "c1", "outputs": outputs_for(a["cases"])}
        )
    a_check_id = a_check.json()["id"]

    assert_error_shape(
        post_check(api_client, a["gate"], b_secret, {"candidate": "c", "outputs": []}), 404, "not_found"
    )
    assert_error_shape(api_client.get(f"/api/v1/checks/{a_check_id}/", **bearer(b_secret)), 404, "not_found")
    verdict = api_client.get(f"/api/v1/gates/{a['gate'].slug}/verdict/?candidate=c1", **bearer(b_secret))
    assert_error_shape(verdict, 404, "not_found")
    listed = api_client.get("/api/v1/gates/", **bearer(b_secret)).json()["results"]
    assert [g["slug"] for g in listed] == ["gate-b"]
    assert Check.objects.count() == 1


def test_gate_list_shows_contract_fields(api_client):
    s = make_scenario()
    secret = make_token([s["gate"]], scopes=["checks:read"])
    gates = api_client.get("/api/v1/gates/", **bearer(secret)).json()["results"]
    assert len(gates) == 1
    assert {"slug", "name", "owner", "dataset", "rules"} <= set(gates[0])
    assert gates[0]["owner"] == s["owner"].username
    assert gates[0]["dataset"] == s["dataset"].slug
    assert gates[0]["rules"][0]["grader"] == "answer-exact"


def test_token_without_write_scope_cannot_request_checks(api_client):
    s = make_scenario()
    secret = make_token([s["gate"]], scopes=["checks:read"])
    response = post_check(
        api_client, s["gate"], secret, {"candidate": "x", "outputs": outputs_for(s["cases"])}
    )
    assert_error_shape(response, 403, "forbidden")
    assert Run.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"outputs": []}, "candidate"),
        ({"candidate": "x", "outputs": "not a list"}, "outputs"),
        ({"candidate": "x", "outputs": [{"output": "No"}]}, "outputs[0].case"),
        ({"candidate": "x", "outputs": [{"case": "t0"}]}, "outputs[0].output"),
        ({"candidate": "x", "outputs": [{"case": "nope", "output": "No"}]}, "outputs"),
        (
            {"candidate": "x", "outputs": [{"case": "t0", "output": "No"}, {"case": "t0", "output": "No"}]},
            "outputs[1].case",
        ),
        (
            {
                "candidate": "x",
                "outputs": [{"case": "t0", "output": "No", "metrics": {"latency_ms": "fast"}}],
            },
            "outputs[0].metrics.latency_ms",
        ),
        (
            {"candidate": "x", "outputs": [{"case": "t0", "output": "No", "metrics": {"speed": 1}}]},
            "outputs[0].metrics.speed",
        ),
        (
            {"candidate": "x", "outputs": [{"case": "t0", "output": "No", "trace": [{"type": "dance"}]}]},
            "outputs[0].trace[0].type",
        ),
        ({"candidate": "x", "outputs": [], "surprise": 1}, "surprise"),
    ],
)
def test_malformed_bodies_get_400_naming_the_field_and_write_nothing(api_client, body, field):
    s = make_scenario()
    secret = make_token([s["gate"]])
    error = assert_error_shape(post_check(api_client, s["gate"], secret, body), 400, "invalid")
    assert field in error["details"], error
    assert Run.objects.count() == 0
    assert Check.objects.count() == 0
    assert CaseResult.objects.count() == 0


def test_invalid_json_gets_400_malformed_json(api_client):
    s = make_scenario()
    secret = make_token([s["gate"]])
    response = api_client.generic(
        "POST",
        f"/api/v1/gates/{s['gate'].slug}/checks/",
        "{not json",
        content_type="application/json",
        **bearer(secret),
    )
    assert_error_shape(response, 400, "malformed_json")
    assert Check.objects.count() == 0


def test_verdict_endpoint_returns_latest_check_of_candidate(api_client, django_capture_on_commit_callbacks):
    s = make_scenario()
    secret = make_token([s["gate"]])
    with django_capture_on_commit_callbacks(execute=True):
        post_check(
            api_client, s["gate"], secret, {"candidate": "v1", "outputs": outputs_for(s["cases"], "Yes")}
        )
    with django_capture_on_commit_callbacks(execute=True):
        second = post_check(
            api_client, s["gate"], secret, {"candidate": "v1", "outputs": outputs_for(s["cases"])}
        )
    url = f"/api/v1/gates/{s['gate'].slug}/verdict/"
    latest = api_client.get(url, {"candidate": "v1"}, **bearer(secret)).json()
    assert latest["id"] == second.json()["id"]
    assert latest["verdict"] == Verdict.PASS
    assert_error_shape(api_client.get(url, {"candidate": "v9"}, **bearer(secret)), 404, "not_found")
    assert_error_shape(api_client.get(url, **bearer(secret)), 400, "invalid")


def test_idempotency_key_returns_same_check_or_422_for_another_body(api_client):
    s = make_scenario()
    secret = make_token([s["gate"]])
    body = {"candidate": "v1", "outputs": outputs_for(s["cases"])}
    first = post_check(api_client, s["gate"], secret, body, HTTP_IDEMPOTENCY_KEY="deploy-42")
    again = post_check(
        api_client, s["gate"], secret, dict(reversed(body.items())), HTTP_IDEMPOTENCY_KEY="deploy-42"
    )
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = post_check(
        api_client, s["gate"], secret, {**body, "candidate": "v2"}, HTTP_IDEMPOTENCY_KEY="deploy-42"
    )
    assert_error_shape(other, 422, "idempotency_key_reused")
    assert Check.objects.count() == 1


def test_deploy_token_can_never_approve(api_client, django_capture_on_commit_callbacks):
    s = make_scenario()
    secret = make_token([s["gate"]])
    with django_capture_on_commit_callbacks(execute=True):
        response = post_check(
            api_client,
            s["gate"],
            secret,
            {"candidate": "slow", "outputs": outputs_for(s["cases"], latency_ms=5000)},
        )
    check_id = response.json()["id"]
    response = api_client.post(
        f"/api/v1/checks/{check_id}/approve/", {"reason": "ok"}, format="json", **bearer(secret)
    )
    assert_error_shape(response, 403, "forbidden")
    assert Check.objects.get(pk=check_id).decisions.count() == 0


def test_approver_with_personal_token_acknowledges_warn(
    api_client, approver, django_capture_on_commit_callbacks
):
    s = make_scenario()
    s["gate"].approvers.add(approver)
    secret = make_token([s["gate"]])
    personal = make_token([], user=approver)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_check(
            api_client,
            s["gate"],
            secret,
            {"candidate": "slow", "outputs": outputs_for(s["cases"], latency_ms=5000)},
        )
    check_id = response.json()["id"]
    url = f"/api/v1/checks/{check_id}/approve/"
    assert_error_shape(api_client.post(url, {}, format="json", **bearer(personal)), 400, "invalid")
    approved = api_client.post(
        url, {"reason": "latency spike is the cold cache"}, format="json", **bearer(personal)
    )
    assert approved.status_code == 200
    body = approved.json()
    assert body["release_allowed"] is True
    assert body["approval"]["decisions"][0]["by"] == "approver"
    assert body["approval"]["decisions"][0]["reason"] == "latency spike is the cold cache"


def test_error_responses_are_json_for_unknown_check(api_client):
    s = make_scenario()
    secret = make_token([s["gate"]])
    assert_error_shape(api_client.get("/api/v1/checks/999999/", **bearer(secret)), 404, "not_found")
