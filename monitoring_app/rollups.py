"""Rollups: each chart series of a monitor over each settled window, computed once and kept.

The monitor page draws a day of hourly windows per metric, and computing one means scanning
that day's traffic (a sort, for a percentile). A window that has settled (ended
EVALGATE_ROLLUP_SETTLE_MINUTES ago) is computed once and stored as a WindowRollup; a page then
reads a few dozen rows and computes only the windows not rolled up yet (the last, unsettled
one; or all of them after an invalidation). The periodic evaluation keeps them warm.

A stored number is never shown once it could be wrong:

- Traces written into a settled window (late arrivals), or purged from one: the transaction
  that writes or deletes them bumps the source's ``rollup_epoch``, and rollups of another epoch
  do not count. The epoch is read before anything else, so a rollup computed while such traces
  commit carries the epoch they replace and is ignored: wasted, never wrong.
- Samples still waiting for their grades: a pass-rate window with a pending sample is not
  stored (checked before its grades are read; a sample never returns to pending).
- The monitor's filter or window width changed: rollups carry the ``scope`` (a digest of those
  settings) they were computed for.
"""

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from monitoring_app import windows
from monitoring_app.choices import SampleStatus
from monitoring_app.models import Monitor, MonitorSample, Source, Trace, WindowRollup

RELEASES = "releases"


@dataclass(frozen=True)
class Series:
    """One line of the monitor page: a metric (pass_rate: of one grader)."""

    metric: str
    grader_id: int | None = None

    @property
    def key(self) -> str:
        return f"pass_rate:{self.grader_id}" if self.metric == "pass_rate" else self.metric


@dataclass
class Drawn:
    """What the charts need: each series' measures by window start, and each release's first
    trace time within the windows."""

    series: dict[str, list[tuple[dt.datetime, windows.Measure]]]
    releases: list[tuple[dt.datetime, str]]


def settle_time() -> dt.timedelta:
    return dt.timedelta(minutes=settings.EVALGATE_ROLLUP_SETTLE_MINUTES)


def scope_of(monitor: Monitor) -> str:
    settings_that_shape_windows = [
        monitor.source_id,
        monitor.release,
        monitor.metadata_filter or {},
        monitor.window_minutes,
    ]
    blob = json.dumps(settings_that_shape_windows, sort_keys=True, default=str)
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


def invalidate(source_ids: Iterable[int]) -> None:
    """Inside the transaction that writes or deletes traffic of settled windows: the sources'
    rollups stop counting the moment that transaction commits (not before, not after)."""
    Source.objects.filter(pk__in=sorted(set(source_ids))).update(rollup_epoch=F("rollup_epoch") + 1)


def touches_settled(times: Iterable[dt.datetime], *, now: dt.datetime | None = None) -> bool:
    """Whether traces at these times fall into windows that may be rolled up already."""
    cutoff = (now or timezone.now()) - settle_time()
    return any(t < cutoff for t in times)


def _measure_of(row: WindowRollup) -> windows.Measure:
    interval = (row.low, row.high) if row.low is not None and row.high is not None else None
    return windows.Measure(
        row.value, interval, row.n, successes=row.successes, variance=row.variance, errored=row.errored
    )


def _rollup(base: dict, key: str, start: dt.datetime, found: windows.Measure) -> WindowRollup:
    low, high = found.interval if found.interval else (None, None)
    return WindowRollup(
        **base,
        key=key,
        window_start=start,
        n=found.n,
        successes=found.successes,
        errored=found.errored,
        value=found.value,
        low=low,
        high=high,
        variance=found.variance,
    )


def _runs(starts: list[dt.datetime], width: dt.timedelta) -> list[tuple[dt.datetime, dt.datetime]]:
    """Consecutive window starts as (start, end) spans, so each span is one grouped query."""
    spans: list[tuple[dt.datetime, dt.datetime]] = []
    for start in sorted(starts):
        if spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], start + width)
        else:
            spans.append((start, start + width))
    return spans


def draw(
    monitor: Monitor,
    wanted: list[Series],
    start: dt.datetime,
    count: int,
    width: dt.timedelta,
    *,
    now: dt.datetime | None = None,
) -> Drawn:
    """``wanted`` over ``count`` windows of ``width`` from ``start``: rolled-up windows read,
    the others computed (and stored once settled)."""
    # The epoch first: see the module docstring for why the order matters.
    epoch = Source.objects.filter(pk=monitor.source_id).values_list("rollup_epoch", flat=True).get()
    scope = scope_of(monitor)
    starts = [start + i * width for i in range(count)]
    end = starts[-1] + width
    settled_before = min(now or timezone.now(), timezone.now()) - settle_time()
    keys = [s.key for s in wanted] + [RELEASES]
    base = {"monitor_id": monitor.pk, "scope": scope, "epoch": epoch}
    stored: dict[str, dict[dt.datetime, WindowRollup]] = {key: {} for key in keys}
    rows = WindowRollup.objects.filter(**base, key__in=keys, window_start__gte=start, window_start__lt=end)
    for row in rows:
        stored[row.key][row.window_start] = row
    measured: dict[str, dict[dt.datetime, windows.Measure]] = {
        key: {w: _measure_of(r) for w, r in rows.items()} for key, rows in stored.items() if key != RELEASES
    }
    first_seen: dict[dt.datetime, dict[str, str]] = {w: r.releases for w, r in stored[RELEASES].items()}
    new_rows: list[WindowRollup] = []

    def keep(key: str, window: dt.datetime, found: windows.Measure, *, settled: bool) -> None:
        measured.setdefault(key, {})[window] = found
        if settled:
            new_rows.append(_rollup(base, key, window, found))

    traces = windows.monitor_traces(monitor)
    samples = MonitorSample.objects.filter(monitor=monitor, in_sample=True, status=SampleStatus.GRADED)
    for series in wanted:
        if series.metric == "pass_rate":
            continue
        missing = [w for w in starts if w not in stored[series.key]]
        spec = windows.get_metric(series.metric)
        for lo, hi in _runs(missing, width):
            found = dict(windows.series(spec, traces, lo, hi, width))
            for w in (w for w in missing if lo <= w < hi):
                nothing = windows.Measure(None, None, 0)
                keep(series.key, w, found.get(w, nothing), settled=w + width <= settled_before)

    pass_rates = [s for s in wanted if s.metric == "pass_rate" and s.grader_id is not None]
    missing = sorted({w for s in pass_rates for w in starts if w not in stored[s.key]})
    for lo, hi in _runs(missing, width):
        waiting = _windows_with_pending_samples(monitor, lo, hi, width)  # before the grades
        found = windows.pass_rate_series(samples, [s.grader_id for s in pass_rates], lo, hi, width)
        for series in pass_rates:
            by_window = dict(found.get(series.grader_id, []))
            for w in (w for w in missing if lo <= w < hi and w not in stored[series.key]):
                settled = w + width <= settled_before and w not in waiting
                keep(series.key, w, by_window.get(w, windows.Measure(None, None, 0)), settled=settled)

    missing = [w for w in starts if w not in stored[RELEASES]]
    for lo, hi in _runs(missing, width):
        found_releases = _first_traces(traces, lo, hi, width)
        for w in (w for w in missing if lo <= w < hi):
            first_seen[w] = found_releases.get(w, {})
            if w + width <= settled_before:
                new_rows.append(WindowRollup(**base, key=RELEASES, window_start=w, releases=first_seen[w]))

    if new_rows:
        WindowRollup.objects.bulk_create(new_rows, ignore_conflicts=True)
    out = {
        s.key: [(w, m) for w, m in sorted(measured.get(s.key, {}).items()) if m.n and m.value is not None]
        for s in wanted
    }
    firsts: dict[str, dt.datetime] = {}
    for releases in first_seen.values():
        for release, when in releases.items():
            when = dt.datetime.fromisoformat(when)
            if release not in firsts or when < firsts[release]:
                firsts[release] = when
    return Drawn(out, sorted((when, release) for release, when in firsts.items()))


def _windows_with_pending_samples(
    monitor: Monitor, start: dt.datetime, end: dt.datetime, width: dt.timedelta
) -> set[dt.datetime]:
    width_s = int(width.total_seconds())
    times = (
        MonitorSample.objects.filter(
            monitor=monitor, in_sample=True, status=SampleStatus.PENDING, time__gte=start, time__lt=end
        )
        .order_by()
        .values_list("time", flat=True)
    )
    return {dt.datetime.fromtimestamp(int(t.timestamp()) // width_s * width_s, tz=dt.UTC) for t in times}


def _first_traces(
    traces: QuerySet[Trace], start: dt.datetime, end: dt.datetime, width: dt.timedelta
) -> dict[dt.datetime, dict[str, str]]:
    """Per window: each release's first trace time in it (ISO strings, as stored)."""
    width_s = int(width.total_seconds())
    rows = (
        windows.in_window(traces, start, end)
        .exclude(release="")
        .order_by()
        .annotate(t=F("time"), r=F("release"))
        .values_list("t", "r")
    )
    sql, params = rows.query.sql_with_params()
    bucket = windows.bucket_sql("w.t", width_s)
    out: dict[dt.datetime, dict[str, str]] = {}
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {bucket}, w.r, min(w.t) FROM ({sql}) AS w GROUP BY 1, 2", params)
        for number, release, first in cursor.fetchall():
            window = dt.datetime.fromtimestamp(int(number) * width_s, tz=dt.UTC)
            if isinstance(first, str):  # SQLite returns the aggregate as text
                first = dt.datetime.fromisoformat(first)
            if timezone.is_naive(first):
                first = timezone.make_aware(first, dt.UTC)
            out.setdefault(window, {})[release] = first.isoformat()
    return out


def clear_stale(monitor: Monitor, *, keep_after: dt.datetime) -> int:
    """Periodic: drop the monitor's rollups of other epochs or scopes, and those too old to draw."""
    epoch = Source.objects.filter(pk=monitor.source_id).values_list("rollup_epoch", flat=True).get()
    stale = WindowRollup.objects.filter(monitor=monitor).filter(
        ~Q(epoch=epoch) | ~Q(scope=scope_of(monitor)) | Q(window_start__lt=keep_after)
    )
    return stale.delete()[0]
