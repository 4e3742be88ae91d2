"""Post-release verdicts: a release whose live latency p95 doubled fails its production rules;
with too little traffic the verdict is inconclusive; production rules never decide a check."""

import datetime as dt
import random

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from gates_app.models import GateRule
from gates_app.production import production_verdict
from gates_app.services import rule_specs
from monitoring_app.ingest import store_records
from monitoring_app.records import parse_records
from tests.factories import make_dataset, make_gate, make_source, make_token

pytestmark = pytest.mark.django_db
SHIPPED = timezone.now().replace(microsecond=0) - dt.timedelta(hours=2)
URL = "/api/v1/gates/{}/production/"

RULES = [
    {
        "stage": "production",
        "name": "latency p95 holds",
        "metric": "latency_p95_ms",
        "mode": "no_regression",
        "margin": 100,
    },
    {
        "stage": "production",
        "name": "refusals",
        "metric": "refusal_rate",
        "threshold": 0.1,
        "severity": "warn",
    },
    {"name": "latency budget", "metric": "latency_p95_ms", "threshold": 2000},
]


def serve(source, release, start, n, *, latency, seed=1, refusals_every=50, reported=True):
    """``n`` traces of ``release`` over the hour from ``start``, latencies around ``latency``, one
    in ``refusals_every`` a refusal: reported in ``metrics.refused``, or only said in the answer."""
    rng = random.Random(seed)
    raw = [
        {
            "id": f"{release}-{start:%H%M}-{i}",
            "time": (start + dt.timedelta(seconds=i * 3600 / n)).isoformat(),
            "release": release,
            "output": "Sorry, I can't help with that." if i % refusals_every == 0 else "Done.",
            "metrics": {
                "latency_ms": max(1.0, rng.gauss(latency, latency / 4)),
                **({"refused": i % refusals_every == 0} if reported else {}),
            },
        }
        for i in range(n)
    ]
    records = parse_records(raw)
    store_records(records, [source] * len(records))


@pytest.fixture
def gate():
    gate = make_gate(make_dataset(), rules=RULES, production_min_traces=200)
    make_source(gates=(gate,))
    return gate


def test_a_release_whose_latency_p95_doubled_fails(gate):
    source = gate.sources.get()
    serve(source, "v1", SHIPPED - dt.timedelta(hours=1), 400, latency=800)
    serve(source, "v2", SHIPPED, 400, latency=1600)
    body = production_verdict(gate, "v2")
    assert (body["verdict"], body["baseline"], body["traces"], body["baseline_traces"]) == (
        "fail",
        "v1",
        400,
        400,
    )
    latency = body["rules"][0]
    assert (latency["name"], latency["outcome"]) == ("latency p95 holds", "fail")
    assert latency["value"] > 1.8 * latency["baseline"]
    low, high = latency["interval"]
    assert 100 < low < latency["difference"] < high
    refusals = body["rules"][1]
    assert (refusals["outcome"], refusals["value"], refusals["n"]) == ("pass", 0.02, 400)
    assert [r["name"] for r in body["rules"]] == ["latency p95 holds", "refusals"]  # no release rule


def test_the_same_latency_passes(gate):
    source = gate.sources.get()
    serve(source, "v1", SHIPPED - dt.timedelta(hours=1), 400, latency=800, seed=1)
    serve(source, "v2", SHIPPED, 400, latency=800, seed=2)
    body = production_verdict(gate, "v2")
    assert body["verdict"] == "pass", body["rules"]


def test_too_little_traffic_is_inconclusive(gate):
    source = gate.sources.get()
    serve(source, "v1", SHIPPED - dt.timedelta(hours=1), 400, latency=800)
    serve(source, "v2", SHIPPED, 60, latency=1600)
    body = production_verdict(gate, "v2")
    assert body["verdict"] == "inconclusive"
    assert {r["outcome"] for r in body["rules"]} == {"undecided"}
    assert "only 60 trace(s) of v2 yet; the gate needs 200" in body["rules"][0]["note"]
    # A release with no traffic at all is inconclusive too, never a pass.
    nothing = production_verdict(gate, "v3")
    assert nothing["verdict"] == "inconclusive" and "no traffic" in nothing["note"]


def test_a_refusal_rate_rule_is_decided_on_traffic_that_does_not_report_refusals(gate):
    # The refusals are only in the answers: ingestion detects them (Trace.refused_detected).
    source = gate.sources.get()
    serve(source, "v1", SHIPPED - dt.timedelta(hours=1), 400, latency=800, reported=False)
    serve(source, "v2", SHIPPED, 400, latency=800, seed=2, refusals_every=4, reported=False)
    body = production_verdict(gate, "v2")
    refusals = next(r for r in body["rules"] if r["metric"] == "refusal_rate")
    assert (refusals["outcome"], refusals["n"]) == ("fail", 400)
    assert refusals["value"] == pytest.approx(0.25)
    assert body["verdict"] == "warn"


def test_production_rules_never_decide_a_check(gate):
    assert [spec.name for spec in rule_specs(gate)] == ["latency budget"]


def test_a_production_rule_is_validated_as_one():
    rule = GateRule(gate=make_gate(make_dataset()), name="x", stage="production", metric="pinned_pass")
    with pytest.raises(ValidationError, match="Unknown production metric"):
        rule.full_clean()
    rule.metric, rule.scope, rule.mode = "refusal_rate", {"tier": "trusted"}, "no_regression"
    with pytest.raises(ValidationError, match="no scope"):
        rule.full_clean()


def test_the_api_answers_deploy_scripts_within_the_tokens_reach(api_client, gate):
    source = gate.sources.get()
    serve(source, "v1", SHIPPED - dt.timedelta(hours=1), 300, latency=800)
    serve(source, "v2", SHIPPED, 300, latency=1700)
    secret = make_token([gate], scopes=["checks:read"])
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    response = api_client.get(URL.format(gate.slug), {"candidate": "v2"}, **auth)
    assert response.status_code == 200, response.json()
    assert response.json()["verdict"] == "fail"
    assert response.json()["window"]["start"].startswith(SHIPPED.strftime("%Y-%m-%dT%H:%M"))

    missing = api_client.get(URL.format(gate.slug), **auth)
    assert missing.status_code == 400 and "candidate" in missing.json()["error"]["details"]
    other = make_gate(make_dataset())
    assert api_client.get(URL.format(other.slug), {"candidate": "v2"}, **auth).status_code == 404
    traces_only = make_token([gate], scopes=["traces:write"])
    forbidden = api_client.get(
        URL.format(gate.slug), {"candidate": "v2"}, HTTP_AUTHORIZATION=f"Bearer {traces_only}"
    )
    assert forbidden.status_code == 403
