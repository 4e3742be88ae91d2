"""Issue 12: every bad input is refused at the boundary, in the JSON error shape, writing nothing.

NUL characters and lone surrogates (which PostgreSQL cannot store), absurd nesting, numbers the
columns cannot hold, unknown query parameters, bodies over the request limit (413, gzip too).
"""

import gzip
import json

import pytest

from gates_app.models import Check
from grading_app.models import Run
from tests.factories import make_scenario, make_token, outputs_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    s = make_scenario()
    s["secret"] = make_token(
        [s["gate"]], scopes=["checks:write", "checks:read", "incidents:write", "cases:write"]
    )
    s["url"] = f"/api/v1/gates/{s['gate'].slug}/checks/"
    return s


def post_raw(api_client, url, secret, body: bytes, **headers):
    return api_client.generic(
        "POST", url, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}", **headers
    )


def refused(response, status: int = 400) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()["error"]
    assert set(body) == {"code", "message", "details"}
    return body


def nothing_written():
    return not Check.objects.exists() and not Run.objects.exists()


def check_body(world, **changes) -> dict:
    outputs = outputs_for(world["cases"])
    return {"candidate": "v1", "outputs": outputs, **changes}


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda b: b["outputs"][0].update(output="No\u0000"), "outputs[0].output"),
        (lambda b: b.update(metadata={"note": "x\u0000y"}), "metadata.note"),
        (
            lambda b: b["outputs"][1].update(trace=[{"type": "message", "content": "\u0000"}]),
            "outputs[1].trace[0].content",
        ),
        (lambda b: b.update(candidate="v1\u0000"), "candidate"),
    ],
)
def test_a_nul_character_anywhere_is_a_400_naming_its_path(api_client, world, mutate, path):
    body = check_body(world)
    mutate(body)

    error = refused(post_raw(api_client, world["url"], world["secret"], json.dumps(body).encode()))

    assert list(error["details"]) == [path]
    assert "NUL" in error["details"][path][0]
    assert nothing_written()


def test_a_lone_surrogate_is_a_400_naming_its_path(api_client, world):
    text = json.dumps(check_body(world)).replace('"output": "No"', '"output": "No \\ud800"', 1)

    error = refused(post_raw(api_client, world["url"], world["secret"], text.encode()))

    assert list(error["details"]) == ["outputs[0].output"]
    assert "lone surrogate" in error["details"]["outputs[0].output"][0]
    assert nothing_written()


@pytest.mark.parametrize("depth", [70, 1000, 100_000])
def test_absurd_nesting_is_a_400_not_a_crash(api_client, world, depth):
    nested = "[" * depth + "]" * depth
    body = json.dumps({"candidate": "v1", "outputs": outputs_for(world["cases"]), "metadata": {"n": None}})
    body = body.replace('"n": null', f'"n": {nested}')

    error = refused(post_raw(api_client, world["url"], world["secret"], body.encode()))

    assert "Nested deeper than 64 levels." in json.dumps(error["details"])
    assert nothing_written()


def test_nan_and_infinity_are_not_json(api_client, world):
    text = json.dumps(check_body(world)).replace('"latency_ms": 800', '"latency_ms": NaN', 1)

    error = refused(post_raw(api_client, world["url"], world["secret"], text.encode()))

    assert error["code"] == "malformed_json"
    assert nothing_written()


@pytest.mark.parametrize(
    ("metric", "value", "message"),
    [
        ("input_tokens", 10**30, "Must be at most 2,147,483,647."),
        ("retries", 2**31, "Must be at most 2,147,483,647."),
        ("latency_ms", 1e300, "Must be a finite number at most 1e+12."),
        ("cost_usd", -0.5, "Must not be negative."),
    ],
)
def test_metrics_the_columns_cannot_hold_are_a_400(api_client, world, metric, value, message):
    body = check_body(world)
    body["outputs"][0]["metrics"] = {metric: value}

    error = refused(post_raw(api_client, world["url"], world["secret"], json.dumps(body).encode()))

    assert error["details"] == {f"outputs[0].metrics.{metric}": [message]}
    assert nothing_written()


@pytest.mark.parametrize("query", ["?candidate=x%00y", "?candidate=v1&colour=red"])
def test_bad_query_strings_are_a_400(api_client, world, query):
    url = f"/api/v1/gates/{world['gate'].slug}/verdict/{query}"

    error = refused(api_client.get(url, HTTP_AUTHORIZATION=f"Bearer {world['secret']}"))

    assert set(error["details"]) <= {"candidate", "colour"}


def test_a_check_id_beyond_what_the_database_holds_is_a_404(api_client, world):
    response = api_client.get(
        "/api/v1/checks/" + "9" * 40 + "/", HTTP_AUTHORIZATION=f"Bearer {world['secret']}"
    )

    assert refused(response, 404)["code"] == "not_found"


def test_a_body_over_the_request_limit_is_a_413_in_the_json_shape(api_client, world, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50_000
    body = check_body(world)
    body["outputs"][0]["output"] = "No " + "x" * 60_000

    error = refused(post_raw(api_client, world["url"], world["secret"], json.dumps(body).encode()), 413)

    assert error["code"] == "request_too_large"
    assert error["details"] == {"limit_bytes": 50_000}
    assert "EVALGATE_MAX_REQUEST_MB" in error["message"]
    assert nothing_written()


def test_a_gzip_body_is_read_and_one_that_expands_past_the_limit_is_a_413(
    api_client, world, settings, django_capture_on_commit_callbacks
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50_000
    small = gzip.compress(json.dumps(check_body(world)).encode())
    with django_capture_on_commit_callbacks(execute=True):
        accepted = post_raw(api_client, world["url"], world["secret"], small, HTTP_CONTENT_ENCODING="gzip")
    assert accepted.status_code == 202, accepted.content
    assert Check.objects.get().verdict == "pass"

    bomb_body = check_body(world, candidate="v2")
    bomb_body["outputs"][0]["output"] = "No " + " " * 5_000_000  # 5 MB of spaces: a few KB compressed
    bomb = gzip.compress(json.dumps(bomb_body).encode())
    assert len(bomb) < 50_000
    error = refused(
        post_raw(api_client, world["url"], world["secret"], bomb, HTTP_CONTENT_ENCODING="gzip"), 413
    )
    assert error["code"] == "request_too_large"
    assert Check.objects.count() == 1


def test_an_unknown_content_encoding_is_a_400(api_client, world):
    error = refused(
        post_raw(api_client, world["url"], world["secret"], b"\x00\x01", HTTP_CONTENT_ENCODING="br")
    )

    assert "Content-Encoding" in error["message"]


def test_incidents_and_cases_refuse_nul_too(api_client, world):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {world['secret']}"}
    incident = api_client.post("/api/v1/incidents/", {"title": "bad\u0000"}, format="json", **headers)
    assert list(refused(incident)["details"]) == ["title"]
    cases = api_client.post(
        f"/api/v1/datasets/{world['dataset'].slug}/cases/",
        {"cases": [{"key": "k", "input": {"q": "\u0000"}}], "failure_class": "factual"},
        format="json",
        **headers,
    )
    assert list(refused(cases)["details"]) == ["cases[0].input.q"]


def test_requests_with_bad_tokens_are_throttled_by_address(api_client, settings, world):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "anonymous": "3/min"},
    }
    from rest_framework.settings import api_settings

    api_settings.reload()
    try:
        codes = [
            api_client.get("/api/v1/gates/", HTTP_AUTHORIZATION="Bearer egt_nope_nope").status_code
            for _ in range(4)
        ]
        assert codes == [401, 401, 401, 429]
        assert api_client.get("/api/v1/gates/").status_code == 429  # no token at all: the same address
        assert (
            api_client.get("/api/v1/gates/", HTTP_AUTHORIZATION=f"Bearer {world['secret']}").status_code
            == 200
        )
    finally:
        api_settings.reload()


def test_the_parsers_fast_path_still_sees_every_escape_that_could_hide_a_bad_string():
    from gates_app.api.parsers import strings_need_checking

    assert not strings_need_checking('{"traces": [{"id": "a", "output": "fine \\\\u00e9 text"}]}')
    for suspect in ('"\\u0000"', '"\\uD800"', '"\\udfff"', '"raw \x00 nul"'):
        assert strings_need_checking('{"a": ' + suspect + "}"), suspect
