"""Drift windows and alerts: a refusal rate that goes from 2% to 12% fires exactly one alert,
with its interval, its traces and its webhook; a steady noisy stream fires none."""

import datetime as dt
import random

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from grading_app import stats
from monitoring_app import drift, windows
from monitoring_app.ingest import store_records
from monitoring_app.models import Alert, AlertRule, Trace
from monitoring_app.records import parse_records
from monitoring_app.services import acknowledge_alert
from tests.factories import make_monitor, make_source, make_user

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def traffic(source, start, n, *, refused_share=None, refused_n=None, rng=None, latency=800.0, prefix="t"):
    """``n`` traces spread over the hour from ``start``: ``refused_n`` of them refused (placed at
    random), or each refused with probability ``refused_share``."""
    rng = rng or random.Random(7)
    refused = set(rng.sample(range(n), refused_n)) if refused_n is not None else None
    raw = []
    for i in range(n):
        is_refused = i in refused if refused is not None else rng.random() < refused_share
        raw.append(
            {
                "id": f"{prefix}-{start:%H}-{i}",
                "time": (start + dt.timedelta(seconds=i * 3600 / n)).isoformat(),
                "release": "v2",
                "input": {"vars": {"q": i}},
                "output": "I can't help with that." if is_refused else "Here you are.",
                "metrics": {"refused": is_refused, "latency_ms": rng.gauss(latency, latency / 5)},
            }
        )
    for i in range(0, n, 1000):
        batch = parse_records(raw[i : i + 1000])
        store_records(batch, [source] * len(batch))


@pytest.fixture
def monitor(webhook_server):
    source = make_source()
    monitor = make_monitor(
        source,
        sample_rate=0.0,
        min_window_traces=200,
        webhook_url=f"http://127.0.0.1:{webhook_server.server_port}/alerts",
    )
    AlertRule.objects.create(monitor=monitor, name="refusals", metric="refusal_rate", margin=0.02)
    AlertRule.objects.create(monitor=monitor, name="latency", metric="latency_p95_ms", margin=100)
    return monitor


def test_a_refusal_jump_fires_exactly_one_alert_with_interval_traces_and_webhook(
    monitor, webhook_server, django_capture_on_commit_callbacks
):
    traffic(monitor.source, T0, 1000, refused_n=20)
    traffic(monitor.source, T0 + HOUR, 1000, refused_n=120)
    with django_capture_on_commit_callbacks(execute=True):
        fired = drift.evaluate_monitor(monitor, now=T0 + 2 * HOUR + dt.timedelta(minutes=1))
    assert [a.rule.name for a in fired] == ["refusals"]
    alert = fired[0]
    assert (alert.window_start, alert.window_end) == (T0 + HOUR, T0 + 2 * HOUR)
    assert (alert.reference_start, alert.reference_end) == (T0, T0 + HOUR)
    assert (alert.value, alert.reference_value, alert.n, alert.reference_n) == (0.12, 0.02, 1000, 1000)
    low, high = alert.interval
    assert 0.02 < low < 0.10 < high < 0.13  # the whole interval beyond the 2-point margin
    # The same window never alerts twice, however often it is evaluated.
    with django_capture_on_commit_callbacks(execute=True):
        assert drift.evaluate_monitor(monitor, now=T0 + 2 * HOUR + dt.timedelta(minutes=2)) == []
    assert Alert.objects.count() == 1

    [(path, content_type, body)] = webhook_server.received
    assert path == "/alerts" and content_type.startswith("application/json")
    assert (body["monitor"], body["rule"], body["metric"]) == (monitor.slug, "refusals", "refusal_rate")
    assert body["interval"] == alert.interval and body["value"] == 0.12
    alert.refresh_from_db()
    assert alert.webhook_status == "delivered (204)"
    assert "refused__exact=1" in body["traces"]
    assert "time__gte=2026-12-01T09" in body["traces"]


def test_a_steady_noisy_stream_fires_nothing(monitor, webhook_server, django_capture_on_commit_callbacks):
    rng = random.Random(2026)
    for hour in range(5):
        traffic(monitor.source, T0 + hour * HOUR, 600, refused_share=0.05, rng=rng)
        with django_capture_on_commit_callbacks(execute=True):
            assert (
                drift.evaluate_monitor(monitor, now=T0 + (hour + 1) * HOUR + dt.timedelta(seconds=30)) == []
            )
    assert not Alert.objects.exists() and webhook_server.received == []


def test_too_little_traffic_is_never_compared(monitor, django_capture_on_commit_callbacks):
    traffic(monitor.source, T0, 100, refused_n=0)
    traffic(monitor.source, T0 + HOUR, 100, refused_n=60)
    assert drift.evaluate_monitor(monitor, now=T0 + 2 * HOUR) == []


def test_a_latency_doubling_alerts_against_a_pinned_reference(monitor, django_capture_on_commit_callbacks):
    traffic(monitor.source, T0, 500, refused_n=10, latency=800)
    traffic(monitor.source, T0 + HOUR, 500, refused_n=10, latency=800)
    traffic(monitor.source, T0 + 2 * HOUR, 500, refused_n=10, latency=1600)
    monitor.reference = "pinned"
    monitor.reference_start, monitor.reference_end = T0, T0 + HOUR
    monitor.save()
    with django_capture_on_commit_callbacks(execute=True):
        fired = drift.evaluate_monitor(monitor, now=T0 + 3 * HOUR)
    assert [a.rule.name for a in fired] == ["latency"]
    assert fired[0].reference_start == T0 and fired[0].value > 2 * 800


def test_only_the_monitor_owner_acknowledges_an_alert(monitor, django_capture_on_commit_callbacks):
    traffic(monitor.source, T0, 1000, refused_n=20)
    traffic(monitor.source, T0 + HOUR, 1000, refused_n=120)
    with django_capture_on_commit_callbacks(execute=True):
        [alert] = drift.evaluate_monitor(monitor, now=T0 + 2 * HOUR)
    with pytest.raises(PermissionDenied, match="owner"):
        acknowledge_alert(alert, actor=make_user(roles=("Gate owner",)), note="mine now")
    acknowledge_alert(alert, actor=monitor.owner, note="new refusal policy upstream")
    alert.refresh_from_db()
    assert alert.acknowledged_by == monitor.owner and alert.note == "new refusal policy upstream"
    with pytest.raises(PermissionDenied, match="already"):
        acknowledge_alert(alert, actor=monitor.owner)


def test_window_table_measures_every_metric_in_sql(monitor, django_assert_max_num_queries):
    traffic(monitor.source, T0, 400, refused_n=8)
    window = drift.Window(T0, T0 + HOUR)
    with django_assert_max_num_queries(2 * len(windows.METRICS) + 2):
        rows = drift.window_table(monitor, window)
    by_metric = {r["metric"]: r for r in rows}
    assert by_metric["refusal_rate"]["value"] == 0.02 and by_metric["refusal_rate"]["n"] == 400
    latencies = sorted(Trace.objects.values_list("latency_ms", flat=True))
    assert by_metric["latency_p95_ms"]["value"] == pytest.approx(stats.percentile(latencies, 95))
    low, high = by_metric["latency_p95_ms"]["interval"]
    assert low <= by_metric["latency_p95_ms"]["value"] <= high


def test_newcombe_and_quantile_intervals_match_their_references():
    # Newcombe (1998), table II, method 10: 56/70 against 48/80, and 9/10 against 3/10.
    difference, (low, high) = stats.rate_difference_interval(56, 70, 48, 80)
    assert difference == pytest.approx(0.2)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    _, (low, high) = stats.rate_difference_interval(9, 10, 3, 10)
    assert (round(low, 4), round(high, 4)) == (0.1705, 0.8090)
    # The 95% interval of the 95th percentile of 1..1000 lies on ranks 936 and 964.
    assert stats.quantile_ranks(1000, 0.95) == (936, 964)


@pytest.mark.parametrize("metric", ["refusal_rate", "latency_p95_ms", "latency_p50_ms", "tool_calls_mean"])
def test_a_series_agrees_with_each_window_measured_alone(monitor, metric):
    rng = random.Random(11)
    for hour, (refused, latency) in enumerate([(10, 700), (40, 900), (25, 1500)]):
        traffic(monitor.source, T0 + hour * HOUR, 300, refused_n=refused, latency=latency, rng=rng)
    spec = windows.get_metric(metric)
    traces = windows.monitor_traces(monitor)
    with CaptureQueriesContext(connection) as queries:
        got = windows.series(spec, traces, T0, T0 + 3 * HOUR, HOUR)
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert len(selects) <= 2  # whatever the number of windows
    assert [start for start, _ in got] == [T0, T0 + HOUR, T0 + 2 * HOUR]
    for start, measured in got:
        alone = windows.measure(spec, windows.in_window(traces, start, start + HOUR))
        assert measured.n == alone.n == 300
        assert measured.value == pytest.approx(alone.value)
        assert measured.interval == pytest.approx(alone.interval)


def test_the_monitor_page_draws_each_rule_over_time_with_its_alert_and_releases(
    client, monitor, django_capture_on_commit_callbacks
):
    # The page draws the windows before now: the traffic is of the last two hours.
    now = timezone.now()
    start = drift.last_complete_window(monitor, now).start - HOUR
    traffic(monitor.source, start, 1000, refused_n=20)
    traffic(monitor.source, start + HOUR, 1000, refused_n=120)
    with django_capture_on_commit_callbacks(execute=True):
        [alert] = drift.evaluate_monitor(monitor, now=now)
    drawn = drift.charts(monitor, now=now)
    by_title = {title: (points, alerts, releases) for title, _, points, alerts, releases in drawn}
    points, alerts, releases = by_title["refusals: refusal_rate"]
    assert [(p[0], p[1]) for p in points] == [(start, 0.02), (start + HOUR, 0.12)]
    assert alerts == [(start + HOUR, 0.12, "refusals")]
    assert releases == [(start, "v2")]
    client.force_login(monitor.owner)
    monitor.owner.is_staff = True
    monitor.owner.save()
    page = client.get(f"/admin/monitoring_app/monitor/{monitor.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('class="evalgate-chart"') == 2 and "refusals: refusal_rate" in html
    alert_page = client.get(f"/admin/monitoring_app/alert/{alert.pk}/change/")
    assert alert_page.status_code == 200 and "the traces of the window" in alert_page.content.decode()
    # The link behind the alert lists exactly the refused traces of its window.
    listed = client.get(drift.traces_behind(alert))
    assert listed.status_code == 200, listed.content[:500]
    assert listed.context["cl"].result_count == 120


def test_the_alert_page_acknowledges_for_the_owner_only(client, monitor, django_capture_on_commit_callbacks):
    traffic(monitor.source, T0, 1000, refused_n=20)
    traffic(monitor.source, T0 + HOUR, 1000, refused_n=120)
    with django_capture_on_commit_callbacks(execute=True):
        [alert] = drift.evaluate_monitor(monitor, now=T0 + 2 * HOUR)
    page = f"/admin/monitoring_app/alert/{alert.pk}/change/"
    form = f"/admin/monitoring_app/alert/{alert.pk}/decide/acknowledge/"
    other = make_user(roles=("Gate owner",), is_staff=True)
    client.force_login(other)
    assert b"Acknowledge this alert" not in client.get(page).content
    client.post(form, {"confirmed": "yes", "reason": "not mine"})
    alert.refresh_from_db()
    assert alert.acknowledged_at is None
    monitor.owner.is_staff = True
    monitor.owner.save()
    client.force_login(monitor.owner)
    assert b"Acknowledge this alert" in client.get(page).content
    assert (
        client.post(form, {"confirmed": "yes", "reason": "upstream refusal policy changed"}).status_code
        == 302
    )
    alert.refresh_from_db()
    assert (alert.acknowledged_by, alert.note) == (monitor.owner, "upstream refusal policy changed")


def test_a_window_measured_at_once_equals_each_metric_measured_alone(monitor):
    traffic(monitor.source, T0, 400, refused_share=0.1)
    traces = windows.in_window(windows.monitor_traces(monitor), T0, T0 + HOUR)
    specs = [spec for spec in windows.METRICS.values() if not spec.needs_grader]
    with CaptureQueriesContext(connection) as queries:
        count, together = windows.measure_window(specs, traces)
    assert count == 400
    if connection.vendor == "postgresql":
        scans = [q for q in queries.captured_queries if "monitoring_app_trace" in q["sql"]]
        assert len(scans) == 1  # one scan of the window for every metric
    for spec in specs:
        alone = windows.measure(spec, traces)
        assert (together[spec.key].n, together[spec.key].successes) == (alone.n, alone.successes), spec.key
        assert together[spec.key].value == pytest.approx(alone.value), spec.key
        assert together[spec.key].interval == pytest.approx(alone.interval), spec.key
    assert together["latency_p95_ms"].n == 400 and together["ttft_p95_ms"].n == 0


@pytest.mark.parametrize("n", [1, 2, 3, 20, 39, 101, 257])
def test_percentile_ranks_computed_in_sql_are_the_ones_python_computes(monitor, n):
    traffic(monitor.source, T0, n, refused_share=0.1, prefix=f"n{n}")
    traces = windows.in_window(windows.monitor_traces(monitor), T0, T0 + HOUR)
    specs = [windows.METRICS["latency_p95_ms"], windows.METRICS["latency_p50_ms"]]
    _, together = windows.measure_window(specs, traces)
    for spec in specs:
        alone = windows.measure(spec, traces)
        assert together[spec.key].n == alone.n == n
        assert together[spec.key].value == pytest.approx(alone.value, rel=1e-12)
        assert together[spec.key].interval == alone.interval  # the same order statistics, exactly
