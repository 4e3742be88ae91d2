"""The production half of the loop on real services: traces posted over HTTP (a retried batch
stores once), a monitor's sample graded by a real rqworker, a refusal jump that fires one alert
whose webhook the worker delivers, and `evalgate production` deciding a rollback."""

import datetime as dt
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
from django.utils import timezone

from monitoring_app import drift
from monitoring_app.choices import SampleStatus
from monitoring_app.models import Alert, AlertRule, MonitorSample, Trace, TraceGrade
from tests.factories import make_dataset, make_gate, make_grader, make_monitor, make_source, make_token
from tests.integration.conftest import worker_log

pytestmark = pytest.mark.django_db(transaction=True)
EVALGATE = str(Path(sys.executable).parent / "evalgate")
T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def post(live_server, secret, records):
    response = httpx2.post(
        f"{live_server.url}/api/v1/traces/",
        json={"traces": records},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.json()


def hour_of_traffic(prefix, start, n, *, refused, release="v1", latency=800.0, seed=3):
    rng = random.Random(seed)
    chosen = set(rng.sample(range(n), refused))
    return [
        {
            "id": f"{prefix}-{i}",
            "time": (start + dt.timedelta(seconds=i * 3600 / n)).isoformat(),
            "release": release,
            "input": {"messages": [{"role": "user", "content": f"Where is order {i}?"}]},
            "output": "I can't help with that." if i in chosen else "Order shipped on Monday.",
            "metrics": {"refused": i in chosen, "latency_ms": max(1.0, rng.gauss(latency, latency / 4))},
        }
        for i in range(n)
    ]


def wait_until(condition, tmp_path, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n" + worker_log(tmp_path, "worker-1"))
        time.sleep(0.2)


def test_traces_are_graded_online_and_a_refusal_jump_alerts_once(
    live_server, rq_worker, webhook_server, tmp_path
):
    gate = make_gate(make_dataset())
    source = make_source(gates=(gate,))
    secret = make_token([gate], scopes=["traces:write"])
    grader = make_grader("says-order", kind="contains")
    monitor = make_monitor(
        source,
        graders=[grader],
        sample_rate=0.1,
        expected={"contains": ["Order"]},
        min_window_traces=200,
        webhook_url=f"http://127.0.0.1:{webhook_server.server_port}/alerts",
    )
    AlertRule.objects.create(monitor=monitor, name="refusals", metric="refusal_rate", margin=0.02)
    before = hour_of_traffic("a", T0, 1000, refused=20)
    after = hour_of_traffic("b", T0 + dt.timedelta(hours=1), 1000, refused=120)
    for batch in range(0, 1000, 500):
        post(live_server, secret, before[batch : batch + 500])
    first = post(live_server, secret, after[:500])
    retried = post(live_server, secret, after[400:])  # a client retry overlapping the last batch
    assert first == {"received": 500, "stored": 500, "duplicates": []}
    assert retried["stored"] == 500 and len(retried["duplicates"]) == 100
    assert Trace.objects.filter(source=source).count() == 2000

    samples = MonitorSample.objects.filter(monitor=monitor)
    assert 140 <= samples.count() <= 260
    wait_until(
        lambda: not samples.exclude(status=SampleStatus.GRADED).exists(), tmp_path, "the sample graded"
    )
    assert TraceGrade.objects.filter(sample__monitor=monitor).count() == samples.count()
    failed = samples.filter(passed=False)
    assert failed.exists()
    assert set(failed.values_list("trace__refused", flat=True)) == {True}  # only refusals miss "Order"

    fired = drift.evaluate_all(now=T0 + dt.timedelta(hours=2, minutes=1))
    assert fired == 1 and drift.evaluate_all(now=T0 + dt.timedelta(hours=2, minutes=2)) == 0
    alert = Alert.objects.get()
    assert (alert.value, alert.reference_value) == (0.12, 0.02)
    wait_until(lambda: webhook_server.received, tmp_path, "the alert's webhook")
    [(_, _, body)] = webhook_server.received
    assert body["id"] == alert.pk and body["interval"] == alert.interval
    wait_until(lambda: Alert.objects.get().webhook_status.startswith("delivered"), tmp_path, "status")


def run_cli(live_server, secret, *args):
    env = {**os.environ, "EVALGATE_URL": live_server.url, "EVALGATE_TOKEN": secret}
    return subprocess.run([EVALGATE, *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_deploy_script_rolls_back_on_evidence(live_server, rq_worker):
    rules = [
        {
            "stage": "production",
            "name": "latency p95 holds",
            "metric": "latency_p95_ms",
            "mode": "no_regression",
            "margin": 100,
        }
    ]
    gate = make_gate(make_dataset(), rules=rules, production_min_traces=200)
    make_source(gates=(gate,))
    writer = make_token([gate], scopes=["traces:write"])
    reader = make_token([gate], scopes=["checks:read"])
    shipped = timezone.now().replace(microsecond=0) - dt.timedelta(hours=2)
    post(live_server, writer, hour_of_traffic("old", shipped - dt.timedelta(hours=1), 400, refused=0))
    post(live_server, writer, hour_of_traffic("new", shipped, 50, refused=0, release="v2", latency=1600))

    early = run_cli(live_server, reader, "production", gate.slug, "--candidate", "v2")
    assert early.returncode == 3, early.stdout + early.stderr
    assert "production verdict: INCONCLUSIVE" in early.stdout and "needs 200" in early.stdout

    more = hour_of_traffic(
        "new2", shipped + dt.timedelta(minutes=1), 400, refused=0, release="v2", latency=1600
    )
    post(live_server, writer, more)
    late = run_cli(live_server, reader, "production", gate.slug, "--candidate", "v2")
    assert late.returncode == 1, late.stdout + late.stderr
    assert "production verdict: FAIL" in late.stdout and "latency p95 holds" in late.stdout
    assert "450 trace(s) of v2 against 400 of v1" in late.stdout
