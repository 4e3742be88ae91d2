"""Chart rollups: settled windows are read back instead of recomputed, and never shown once they
could be wrong (late traces, purged traces, grades still to come, a changed monitor filter)."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring_app import drift, online, rollups, windows
from monitoring_app.ingest import purge_expired_traces, store_records
from monitoring_app.models import AlertRule, MonitorSample, Source, WindowRollup
from monitoring_app.records import parse_records
from monitoring_app.services import save_monitor
from tests.factories import make_grader, make_monitor, make_source

pytestmark = pytest.mark.django_db
HOUR = dt.timedelta(hours=1)


def now_settled():
    """A "now" whose last complete window, and every one before, has settled: past the settle time
    of the last hour boundary, and not in the future."""
    settle = rollups.settle_time() + dt.timedelta(minutes=1)
    boundary = (timezone.now() - settle).replace(minute=0, second=0, microsecond=0)
    return boundary + settle


def store(source, start, n, *, refused_every=10, prefix="t", route="orders", span_s=3600):
    raw = [
        {
            "id": f"{prefix}-{start:%d%H}-{i}",
            "time": (start + dt.timedelta(seconds=i * span_s / n)).isoformat(),
            "release": "v2",
            "input": {"vars": {"q": i}},
            "output": "I can't help with that." if i % refused_every == 0 else "Refunds take 30 days.",
            "metrics": {"refused": i % refused_every == 0, "latency_ms": 500 + i},
            "metadata": {"route": route},
        }
        for i in range(n)
    ]
    records = parse_records(raw)
    return store_records(records, [source] * len(records))


@pytest.fixture
def monitor():
    monitor = make_monitor(make_source(), sample_rate=0.0)
    AlertRule.objects.create(monitor=monitor, name="refusals", metric="refusal_rate", margin=0.02)
    AlertRule.objects.create(monitor=monitor, name="latency", metric="latency_p95_ms", margin=100)
    return monitor


def three_hours(monitor, now):
    last = drift.last_complete_window(monitor, now)
    starts = [last.start - 2 * HOUR, last.start - HOUR, last.start]
    for start in starts:
        store(monitor.source, start, 100)
    return starts


def drawn(monitor, now):
    return {title: points for title, _, points, _, _ in drift.charts(monitor, now=now)}


def trace_scans(queries):
    return [q["sql"] for q in queries if "monitoring_app_trace" in q["sql"] or "monitorsample" in q["sql"]]


def test_settled_windows_are_computed_once_then_read_back_with_the_same_numbers(monitor):
    now = now_settled()
    starts = three_hours(monitor, now)
    first = drawn(monitor, now)
    assert WindowRollup.objects.filter(monitor=monitor).exists()
    with CaptureQueriesContext(connection) as read_back:
        again = drawn(monitor, now)
    assert again == first
    assert trace_scans(read_back.captured_queries) == []  # nothing scanned: every window rolled up
    refusals = first["refusals: refusal_rate"]
    assert [p[0] for p in refusals] == starts
    traces = windows.monitor_traces(monitor)
    for start, value, interval, n in refusals:
        fresh = windows.measure(
            windows.METRICS["refusal_rate"], windows.in_window(traces, start, start + HOUR)
        )
        assert (value, n) == (fresh.value, fresh.n) == (0.1, 100)
        assert interval == pytest.approx(fresh.interval)
    p95 = first["latency: latency_p95_ms"]
    fresh = windows.measure(
        windows.METRICS["latency_p95_ms"], windows.in_window(traces, starts[0], starts[1])
    )
    assert p95[0][1] == pytest.approx(fresh.value) and p95[0][2] == pytest.approx(fresh.interval)


def test_a_window_not_settled_yet_is_computed_every_time(monitor):
    now = timezone.now()
    last = drift.last_complete_window(monitor, now)
    store(monitor.source, last.start, 50)
    drift.charts(monitor, now=last.end + dt.timedelta(minutes=1))  # the window ended a minute ago
    assert not WindowRollup.objects.filter(monitor=monitor, window_start=last.start).exists()


def test_a_late_trace_into_a_settled_window_counts_at_once(monitor):
    now = now_settled()
    starts = three_hours(monitor, now)
    assert drawn(monitor, now)["refusals: refusal_rate"][0][3] == 100
    epoch = Source.objects.get(pk=monitor.source_id).rollup_epoch
    store(monitor.source, starts[0] + dt.timedelta(minutes=30), 1, refused_every=1, prefix="late")
    assert Source.objects.get(pk=monitor.source_id).rollup_epoch == epoch + 1
    start, value, _, n = drawn(monitor, now)["refusals: refusal_rate"][0]
    assert (start, n, value) == (starts[0], 101, pytest.approx(11 / 101))


def test_traces_arriving_on_time_leave_the_rollups_alone(monitor):
    epoch = Source.objects.get(pk=monitor.source_id).rollup_epoch
    store(monitor.source, timezone.now() - dt.timedelta(minutes=2), 5, span_s=60)
    assert Source.objects.get(pk=monitor.source_id).rollup_epoch == epoch


def test_purged_traces_leave_the_charts_at_once(monitor, settings):
    now = now_settled()
    starts = three_hours(monitor, now)
    assert len(drawn(monitor, now)["refusals: refusal_rate"]) == 3
    settings.EVALGATE_TRACE_RETENTION_DAYS = 1
    purged = purge_expired_traces(now=starts[1] + dt.timedelta(days=1))
    assert purged == 100
    assert [p[0] for p in drawn(monitor, now)["refusals: refusal_rate"]] == starts[1:]


def test_a_pass_rate_waits_for_its_grades_before_it_is_rolled_up():
    grader = make_grader("mentions-days", kind="contains")
    monitor = make_monitor(
        make_source(), graders=[grader], sample_rate=1.0, expected={"contains": ["30 days"]}
    )
    now = now_settled()
    last = drift.last_complete_window(monitor, now)
    store(monitor.source, last.start, 20)  # grading jobs enqueued on commit: not run here
    assert MonitorSample.objects.filter(monitor=monitor, status="pending").count() == 20
    assert drawn(monitor, now)["pass_rate (mentions-days)"] == []
    assert not WindowRollup.objects.filter(monitor=monitor, key=f"pass_rate:{grader.pk}", n__gt=0).exists()
    online.grade_samples(list(MonitorSample.objects.filter(monitor=monitor).values_list("pk", flat=True)))
    [(start, value, _, n)] = drawn(monitor, now)["pass_rate (mentions-days)"]
    assert (start, n, value) == (last.start, 20, 0.9)  # every tenth answer refused: no "30 days"
    assert WindowRollup.objects.filter(
        monitor=monitor, key=f"pass_rate:{grader.pk}", window_start=start
    ).exists()


def test_a_changed_filter_draws_from_its_own_windows(monitor):
    now = now_settled()
    last = drift.last_complete_window(monitor, now)
    store(monitor.source, last.start, 100, route="orders")
    store(monitor.source, last.start, 40, route="refunds", prefix="r")
    assert drawn(monitor, now)["refusals: refusal_rate"][0][3] == 140
    monitor.metadata_filter = {"route": "refunds"}
    save_monitor(monitor, actor=monitor.owner)
    assert drawn(monitor, now)["refusals: refusal_rate"][0][3] == 40


def test_the_periodic_evaluation_warms_the_charts_and_clears_what_no_longer_counts(monitor):
    now = now_settled()
    starts = three_hours(monitor, now)
    drift.evaluate_all(now=now)
    assert WindowRollup.objects.filter(monitor=monitor, key="refusal_rate", n=100).count() == 3
    rollups.invalidate([monitor.source_id])
    drift.evaluate_all(now=now)
    epoch = Source.objects.get(pk=monitor.source_id).rollup_epoch
    assert set(WindowRollup.objects.filter(monitor=monitor).values_list("epoch", flat=True)) == {epoch}
    assert WindowRollup.objects.filter(monitor=monitor, key="refusal_rate", n=100).count() == 3
    assert [p[0] for p in drawn(monitor, now)["refusals: refusal_rate"]] == starts
