"""Fuzz every API operation against the schema the server serves: no 5xx, every answer documented."""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from evalproject.wsgi import application
from gates_app.choices import Scope
from tests.factories import make_scenario, make_source, make_token, outputs_for

# 50 examples per operation with a deploy token of every scope, 25 with a personal token and
# with none: about 1 minute; `-m "not fuzz"` skips them in a quick local loop.
pytestmark = pytest.mark.fuzz

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20250601,
        "generation": {"max-examples": 50, "deterministic": True, "database": "none"},
    }
)
# Loaded eagerly at collection, through the real WSGI app: the document clients download is
# the one under test, and an endpoint that breaks schema generation fails here first.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application, config=CONFIG)

# No 5xx; every status, content type, header and body as documented. Not asserted:
# positive_data_acceptance (schema-valid requests still meet business rules: an unknown case
# key, a decided check) and negative_data_rejection (DRF's CharField takes 42 as "42").
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# The scenario's real slugs and check ids, filled in by the `scenario` fixture.
KNOWN: dict[str, Any] = {}
CANDIDATE = "sha1"


def known_parameters(path: str, which: int) -> dict[str, Any]:
    """Real values for ``path``: check number ``which``, a dataset's slug under /datasets/, else a gate's."""
    parameters: dict[str, Any] = {}
    if "{id}" in path:
        parameters["id"] = KNOWN["check_ids"][which]
    if "{slug}" in path:
        parameters["slug"] = KNOWN["dataset_slug" if path.startswith("/api/v1/datasets/") else "gate_slug"]
    if "{source}" in path:
        parameters.update(source=KNOWN["source_slug"], client_id=KNOWN["trace_id"])
    return parameters


@schema.hook
def before_generate_path_parameters(context: schemathesis.HookContext, strategy: st.SearchStrategy) -> Any:
    # Random slugs and ids only ever reach the 404 branch; real ones let the bodies be fuzzed too.
    real = st.builds(known_parameters, st.just(context.operation.path), st.sampled_from([0, 1]))
    return st.one_of(strategy, real)


@schema.hook
def before_generate_query(context: schemathesis.HookContext, strategy: st.SearchStrategy) -> Any:
    if context.operation.path.endswith(("/verdict/", "/production/")):
        return st.one_of(strategy, st.just({"candidate": CANDIDATE}))
    return strategy


@pytest.fixture
def scenario(
    db: None, api_client: APIClient, django_capture_on_commit_callbacks: Any
) -> Iterator[dict[str, Any]]:
    """A gate with a decided check (a warn: its full rule table, approvable) and a pending one,
    a deploy token of every scope and the gate owner's personal token."""
    s = make_scenario()
    s["deploy_token"] = make_token([s["gate"]], scopes=list(Scope.values))
    s["personal_token"] = make_token([], user=s["owner"])
    url, auth = f"/api/v1/gates/{s['gate'].slug}/checks/", f"Bearer {s['deploy_token']}"
    body = {"candidate": CANDIDATE, "outputs": outputs_for(s["cases"], latency_ms=5000)}
    with django_capture_on_commit_callbacks(execute=True):
        decided = api_client.post(url, body, format="json", HTTP_AUTHORIZATION=auth)
    # Outside the capture nothing commits, so this one stays queued.
    pending = api_client.post(url, {**body, "candidate": "sha2"}, format="json", HTTP_AUTHORIZATION=auth)
    assert decided.status_code == pending.status_code == 202
    source = make_source(gates=(s["gate"],))
    traces = {
        "traces": [
            {"id": "req-1", "release": CANDIDATE, "input": {"vars": {"q": "refund?"}}, "output": "No."}
        ]
    }
    assert (
        api_client.post("/api/v1/traces/", traces, format="json", HTTP_AUTHORIZATION=auth).status_code == 200
    )
    KNOWN.update(
        source_slug=source.slug,
        trace_id="req-1",
        check_ids=[decided.json()["id"], pending.json()["id"]],
        gate_slug=s["gate"].slug,
        dataset_slug=s["dataset"].slug,
    )
    yield s
    KNOWN.clear()


@pytest.fixture
def in_process_app() -> Iterator[None]:
    """Requests must not close the test's transaction: Django's test client disconnects these too."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def call(case: schemathesis.Case, secret: str | None) -> None:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    case.call_and_validate(headers=headers, checks=CHECKS)


# The scenario is set up once per operation and shared by its examples, on purpose.
FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
FUZZ_LIGHT = settings(FUZZ, max_examples=25)


@schema.parametrize()
@FUZZ
def test_api_with_a_deploy_token_of_all_scopes(
    case: schemathesis.Case, scenario: dict, in_process_app: None
) -> None:
    call(case, scenario["deploy_token"])


@schema.parametrize()
@FUZZ_LIGHT
def test_api_with_the_gate_owners_personal_token(
    case: schemathesis.Case, scenario: dict, in_process_app: None
) -> None:
    call(case, scenario["personal_token"])


@schema.parametrize()
@FUZZ_LIGHT
def test_api_without_credentials(case: schemathesis.Case, scenario: dict, in_process_app: None) -> None:
    call(case, None)
