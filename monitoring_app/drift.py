"""Drift: each monitor's metrics over its time windows, and the alerts that fire when the last
complete window is worse than its reference beyond a margin with 95% confidence.

Windows are aligned on the epoch (a 60-minute window runs from hh:00 to hh+1:00), so every
evaluation of the same window sees the same bounds, and an alert fires once per rule and
window (the unique constraint settles concurrent evaluations).
"""

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import httpx2
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from evalproject.queues import enqueue
from monitoring_app import rollups, windows
from monitoring_app.choices import Reference, SampleStatus
from monitoring_app.models import Alert, AlertRule, Monitor, MonitorSample

logger = logging.getLogger(__name__)
WEBHOOK_TIMEOUT_S = 10


@dataclass(frozen=True)
class Window:
    start: dt.datetime
    end: dt.datetime


def last_complete_window(monitor: Monitor, now: dt.datetime | None = None) -> Window:
    seconds = monitor.window_minutes * 60
    now = now or timezone.now()
    end_ts = int(now.timestamp()) // seconds * seconds
    end = dt.datetime.fromtimestamp(end_ts, tz=dt.UTC)
    return Window(end - dt.timedelta(seconds=seconds), end)


def reference_window(monitor: Monitor, current: Window) -> Window:
    if monitor.reference == Reference.PINNED and monitor.reference_start and monitor.reference_end:
        return Window(monitor.reference_start, monitor.reference_end)
    return Window(current.start - (current.end - current.start), current.start)


def graded_samples(monitor: Monitor) -> QuerySet[MonitorSample]:
    """The samples whose grades count in windows: drawn by the sample rate, and graded."""
    return MonitorSample.objects.filter(monitor=monitor, in_sample=True, status=SampleStatus.GRADED)


def measure_rule(rule: AlertRule, window: Window) -> windows.Measure:
    monitor = rule.monitor
    spec = windows.get_metric(rule.metric)
    return windows.measure(
        spec,
        windows.in_window(windows.monitor_traces(monitor), window.start, window.end),
        samples=windows.in_window(graded_samples(monitor), window.start, window.end),
        grader_id=rule.grader_id,
        failure_class=rule.failure_class,
    )


def evaluate_monitor(monitor: Monitor, *, now: dt.datetime | None = None) -> list[Alert]:
    """Compare the last complete window with the reference for each active rule; the alerts
    that fired now (a window that already alerted for a rule does not alert again)."""
    current = last_complete_window(monitor, now)
    reference = reference_window(monitor, current)
    fired = []
    for rule in monitor.alert_rules.filter(active=True).select_related("monitor"):
        if Alert.objects.filter(rule=rule, window_start=current.start).exists():
            continue
        spec = windows.get_metric(rule.metric)
        value, base = measure_rule(rule, current), measure_rule(rule, reference)
        if value.n < monitor.min_window_traces or base.n < monitor.min_window_traces:
            continue  # too little traffic on one side: no alert on a trickle
        comparison = windows.compare(spec, value, base, rule.margin)
        if not comparison.worse:
            continue
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    monitor=monitor,
                    rule=rule,
                    metric=rule.metric,
                    window_start=current.start,
                    window_end=current.end,
                    reference_start=reference.start,
                    reference_end=reference.end,
                    value=value.value,
                    reference_value=base.value,
                    difference=comparison.difference,
                    interval=list(comparison.interval),
                    n=value.n,
                    reference_n=base.n,
                )
                if monitor.webhook_url:
                    enqueue(notify_alert, alert.pk, job_id=f"alert-{alert.pk}-webhook")
        except IntegrityError:
            continue  # another evaluation of the same window fired it first
        logger.info("monitor %s: alert %s fired (%s)", monitor.slug, alert.pk, rule.name)
        fired.append(alert)
    return fired


def evaluate_all(*, now: dt.datetime | None = None) -> int:
    """Periodic: evaluate every active monitor. Returns how many alerts fired."""
    fired = 0
    for monitor in Monitor.objects.filter(active=True):
        fired += len(evaluate_monitor(monitor, now=now))
        warm_charts(monitor, now=now)
    return fired


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The alert as its webhook receives it; ``traces`` is the admin path of the traces behind it."""
    return {
        "id": alert.pk,
        "monitor": alert.monitor.slug,
        "rule": alert.rule.name,
        "metric": alert.metric,
        "window": {"start": alert.window_start.isoformat(), "end": alert.window_end.isoformat()},
        "reference": {"start": alert.reference_start.isoformat(), "end": alert.reference_end.isoformat()},
        "value": alert.value,
        "reference_value": alert.reference_value,
        "difference": alert.difference,
        "interval": alert.interval,
        "margin": alert.rule.margin,
        "n": alert.n,
        "reference_n": alert.reference_n,
        "traces": traces_behind(alert),
    }


def traces_behind(alert: Alert) -> str:
    """The admin list of the traces that make the alert's window (or, for a pass rate, of the
    samples that failed in it)."""
    from urllib.parse import urlencode

    from django.urls import reverse

    span = {"time__gte": alert.window_start.isoformat(), "time__lt": alert.window_end.isoformat()}
    if alert.metric == "pass_rate":
        query = {"monitor__id__exact": alert.monitor_id, "passed__exact": 0, **span}
        return reverse("admin:monitoring_app_monitorsample_changelist") + "?" + urlencode(query)
    query = {"source__id__exact": alert.monitor.source_id, **span}
    if alert.metric in FLAG_FILTERS:
        query.update(FLAG_FILTERS[alert.metric])
    return reverse("admin:monitoring_app_trace_changelist") + "?" + urlencode(query)


FLAG_FILTERS = {
    "refusal_rate": {"refused__exact": 1},
    "escalation_rate": {"escalated__exact": 1},
    "negative_feedback_rate": {"thumbs__exact": "down"},
}


def notify_alert(alert_id: int) -> None:
    """Job: POST the alert to its monitor's webhook; the outcome is kept on the alert."""
    alert = Alert.objects.select_related("monitor", "rule").get(pk=alert_id)
    try:
        response = httpx2.post(
            alert.monitor.webhook_url,
            json=alert_payload(alert),
            timeout=WEBHOOK_TIMEOUT_S,
            follow_redirects=False,
        )
        response.raise_for_status()
        status = f"delivered ({response.status_code})"
    except httpx2.HTTPError as exc:
        logger.warning("webhook for alert %s failed: %s", alert.pk, exc)
        status = f"failed: {exc}"[:200]
    Alert.objects.filter(pk=alert.pk).update(webhook_status=status)


def window_table(monitor: Monitor, window: Window) -> list[dict[str, Any]]:
    """Every metric of the monitor over one window (pass rate per grader, and per failure class
    where traces name one), with its interval: the monitor page's table."""
    traces = windows.in_window(windows.monitor_traces(monitor), window.start, window.end)
    samples = windows.in_window(graded_samples(monitor), window.start, window.end)
    rows = []
    for grader in monitor.graders.all():
        spec = windows.METRICS["pass_rate"]
        rows.append(
            {
                "metric": "pass_rate",
                "grader": grader.slug,
                "failure_class": "",
                **windows.measure(spec, traces, samples=samples, grader_id=grader.pk).as_dict(),
            }
        )
        classes = sorted(set(samples.exclude(failure_class="").values_list("failure_class", flat=True)))
        for failure_class in classes:
            found = windows.measure(
                spec, traces, samples=samples, grader_id=grader.pk, failure_class=failure_class
            )
            if found.n:
                rows.append(
                    {
                        "metric": "pass_rate",
                        "grader": grader.slug,
                        "failure_class": failure_class,
                        **found.as_dict(),
                    }
                )
    for key, spec in windows.METRICS.items():
        if not spec.needs_grader:
            rows.append(
                {"metric": key, "grader": "", "failure_class": "", **windows.measure(spec, traces).as_dict()}
            )
    return rows


CHART_WINDOWS = 24  # how many windows back the monitor page draws (a day of hourly windows)


def charts(monitor: Monitor, *, now: dt.datetime | None = None) -> list[tuple[str, str, list, list, list]]:
    """What the monitor page draws: for each alert rule (and each grader's pass rate), the
    metric over the last windows, with the alerts fired and the releases that started in them.
    Returns (title, unit, points, alerts, releases) per chart. Settled windows come from their
    rollups (monitoring_app.rollups)."""
    from monitoring_app.charts import as_points

    last = last_complete_window(monitor, now)
    width = last.end - last.start
    start = last.end - CHART_WINDOWS * width
    wanted: list[tuple[str, str, int | None, str]] = []
    for rule in monitor.alert_rules.filter(active=True).select_related("grader"):
        wanted.append((rule.metric, rule.grader.slug if rule.grader else "", rule.grader_id, rule.name))
    for grader in monitor.graders.all():
        if not any(w[0] == "pass_rate" and w[2] == grader.pk for w in wanted):
            wanted.append(("pass_rate", grader.slug, grader.pk, ""))
    series = [rollups.Series(metric, gid if metric == "pass_rate" else None) for metric, _, gid, _ in wanted]
    drawn = rollups.draw(monitor, list(dict.fromkeys(series)), start, CHART_WINDOWS, width, now=now)
    fired = list(
        monitor.alerts.filter(window_start__gte=start).values_list(
            "rule__metric", "rule__grader_id", "window_start", "value", "rule__name"
        )
    )
    out = []
    for (metric, grader_slug, grader_id, name), line in zip(wanted, series, strict=True):
        title = f"{metric} ({grader_slug})" if grader_slug else metric
        if name:
            title = f"{name}: {title}"
        alerts = [(w, v, n) for m, g, w, v, n in fired if m == metric and g == grader_id]
        unit = "ms" if metric.endswith("_ms") else ("USD" if metric.endswith("_usd") else "")
        out.append((title, unit, as_points(drawn.series[line.key]), alerts, drawn.releases))
    return out


def warm_charts(monitor: Monitor, *, now: dt.datetime | None = None) -> None:
    """Periodic, after the evaluation: roll up the windows the page will draw, and clear the
    rollups that no longer count."""
    charts(monitor, now=now)
    last = last_complete_window(monitor, now)
    rollups.clear_stale(monitor, keep_after=last.end - CHART_WINDOWS * (last.end - last.start))
