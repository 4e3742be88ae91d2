"""Metrics of production traffic over a time window, with 95% intervals, and the comparison of
two windows (drift alerts, post-release verdicts).

Everything aggregates in SQL on the (source, time) indexes: a window never loads its rows.
Rates get Wilson intervals and Newcombe differences, means Welch's, percentiles the
distribution-free order-statistic interval and its MOVER difference (grading_app.stats), so an
alert or a verdict only says "worse" when the difference is beyond noise.
"""

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import Avg, BooleanField, Count, ExpressionWrapper, F, FloatField, Q, QuerySet, Value
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Coalesce

from grading_app import stats
from monitoring_app.choices import Thumbs
from monitoring_app.models import Monitor, MonitorSample, Trace

RATE, MEAN, P50, P95 = "rate", "mean", "p50", "p95"
# Percentiles sort a window's values: in memory, not in temporary files (the default work_mem
# of 4 MB spills at about 50,000 values). For this transaction only.
SORT_MEMORY = "SET LOCAL work_mem = '64MB'"
QUANTILES = {P50: 0.5, P95: 0.95}
# stats.quantile_ranks in SQL, over a count n (float8), with parameters q, z, q, q: the same
# operations in the same order, so the same doubles and the same ranks.
LOW_RANK_SQL = "greatest(1, floor(n * %s::float8 - %s::float8 * sqrt(n * %s::float8 * (1 - %s::float8))))"
HIGH_RANK_SQL = "least(n, ceil(n * %s::float8 + %s::float8 * sqrt(n * %s::float8 * (1 - %s::float8))))"


@dataclass(frozen=True)
class WindowMetric:
    key: str
    kind: str  # rate | mean | p50 | p95
    direction: str  # "min": higher is better; "max": lower is better
    description: str
    counted: Q = field(default_factory=Q)  # which traces the metric is about (rates and means)
    hit: Q = field(default_factory=Q)  # rates: the traces that count as a success of the rate
    column: str = ""  # means and percentiles
    needs_grader: bool = False


_TOKENS = Coalesce(F("input_tokens"), 0) + Coalesce(F("output_tokens"), 0)
_HAS_FEEDBACK = Q(thumbs__in=[Thumbs.UP, Thumbs.DOWN]) | Q(feedback_score__isnull=False)

METRICS = {
    m.key: m
    for m in [
        WindowMetric(
            "pass_rate", RATE, "min", "Share of sampled traces the grader passed.", needs_grader=True
        ),
        WindowMetric(
            "refusal_rate", RATE, "max", "Share of traces refused.", Q(refused__isnull=False), Q(refused=True)
        ),
        WindowMetric(
            "escalation_rate",
            RATE,
            "max",
            "Share of traces escalated to a person.",
            Q(escalated__isnull=False),
            Q(escalated=True),
        ),
        WindowMetric(
            "retry_rate", RATE, "max", "Share of traces retried.", Q(retries__isnull=False), Q(retries__gt=0)
        ),
        WindowMetric(
            "negative_feedback_rate",
            RATE,
            "max",
            "Share of traces with feedback whose feedback was negative (thumbs down or score < 0.5).",
            _HAS_FEEDBACK,
            Q(thumbs=Thumbs.DOWN) | Q(feedback_score__lt=0.5),
        ),
        WindowMetric("latency_p50_ms", P50, "max", "Median latency.", column="latency_ms"),
        WindowMetric("latency_p95_ms", P95, "max", "95th percentile latency.", column="latency_ms"),
        WindowMetric("ttft_p95_ms", P95, "max", "95th percentile time to first token.", column="ttft_ms"),
        WindowMetric(
            "cost_per_case_usd",
            MEAN,
            "max",
            "Mean cost of a trace.",
            Q(cost_usd__isnull=False),
            column="cost_usd",
        ),
        WindowMetric(
            "tokens_per_case",
            MEAN,
            "max",
            "Mean tokens of a trace (input + output).",
            Q(input_tokens__isnull=False) | Q(output_tokens__isnull=False),
            column="tokens",
        ),
        WindowMetric("tool_calls_mean", MEAN, "max", "Mean tool calls of a trace.", column="tool_calls"),
    ]
}


@dataclass(frozen=True)
class Measure:
    """One metric over one window: the value, its 95% interval, and what a comparison needs."""

    value: float | None
    interval: tuple[float, float] | None
    n: int
    successes: int = 0  # rates
    variance: float = 0.0  # means
    errored: int = 0  # pass_rate: grades that errored (never counted as pass or fail)

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "interval": list(self.interval) if self.interval else None, "n": self.n}


@dataclass(frozen=True)
class Comparison:
    difference: float | None
    interval: tuple[float, float] | None
    worse: bool  # worse than the reference beyond the margin, with 95% confidence
    better_or_same: bool  # within the margin or better, with 95% confidence


def get_metric(key: str) -> WindowMetric:
    try:
        return METRICS[key]
    except KeyError:
        raise KeyError(f"Unknown metric {key!r} (known: {', '.join(sorted(METRICS))}).") from None


def monitor_traces(monitor: Monitor) -> QuerySet[Trace]:
    """The traces a monitor watches (every one, sampled or not)."""
    traces = Trace.objects.filter(source_id=monitor.source_id)
    if monitor.release:
        traces = traces.filter(release=monitor.release)
    for i, (key, value) in enumerate((monitor.metadata_filter or {}).items()):
        # The key as one top-level key, whatever it spells ("a__b", "contains"): never a lookup.
        traces = traces.alias(**{f"metadata_key_{i}": KeyTransform(str(key), "metadata")})
        traces = traces.filter(**{f"metadata_key_{i}": value})
    return traces


def watches(monitor: Monitor, row: Mapping[str, Any]) -> bool:
    """Whether a trace, given by its columns, is one that ``monitor_traces(monitor)`` selects:
    the same filter decided in memory, for traces being stored (before anything reads them back).
    Values compare as JSON does: true is not 1, 1 is 1.0."""
    if row["source_id"] != monitor.source_id or (monitor.release and row["release"] != monitor.release):
        return False
    metadata = row.get("metadata")
    for key, wanted in (monitor.metadata_filter or {}).items():
        if not isinstance(metadata, dict) or str(key) not in metadata:
            return False
        if not _json_equal(metadata[str(key)], wanted):
            return False
    return True


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def in_window(queryset: QuerySet, start: dt.datetime, end: dt.datetime) -> QuerySet:
    return queryset.filter(time__gte=start, time__lt=end)


def measure(
    spec: WindowMetric,
    traces: QuerySet[Trace],
    *,
    samples: QuerySet[MonitorSample] | None = None,
    grader_id: int | None = None,
    failure_class: str = "",
) -> Measure:
    """``spec`` over ``traces`` (pass_rate: over the grades of ``samples`` by the grader)."""
    if spec.key == "pass_rate":
        if samples is None or grader_id is None:
            return Measure(None, None, 0)
        if failure_class:
            samples = samples.filter(failure_class=failure_class)
        # From the samples' side, so their own filters (monitor, window) drive the join into grades.
        row = (
            samples.filter(grades__grader_id=grader_id)
            .order_by()
            .aggregate(
                n=Count("grades", filter=Q(grades__error="", grades__passed__isnull=False)),
                x=Count("grades", filter=Q(grades__error="", grades__passed=True)),
                errored=Count("grades", filter=~Q(grades__error="") | Q(grades__passed__isnull=True)),
            )
        )
        return _rate(row["x"], row["n"], errored=row["errored"])
    traces = traces.order_by()
    if spec.kind == RATE:
        row = traces.filter(spec.counted).aggregate(n=Count("pk"), x=Count("pk", filter=spec.hit))
        return _rate(row["x"], row["n"])
    if spec.kind == MEAN:
        value = _TOKENS if spec.column == "tokens" else F(spec.column)
        row = traces.filter(spec.counted).aggregate(n=Count("pk"), m=Avg(value), m2=Avg(value * value))
        return _mean(row["m"], row["m2"], row["n"])
    return _quantile(traces, spec.column, QUANTILES[spec.kind])


def measure_window(specs: list[WindowMetric], traces: QuerySet[Trace]) -> tuple[int, dict[str, Measure]]:
    """The traces' count and every metric of ``specs`` but pass rates over them, whatever their
    number: on PostgreSQL in one scan of the window (see _measure_window_in_one_scan); elsewhere
    one aggregate (counts, rates, means, how many values each percentile has), then the
    percentiles."""
    traces = traces.order_by()
    if connection.vendor == "postgresql":
        return _measure_window_in_one_scan(specs, traces)
    aggregates: dict[str, Any] = {"traces": Count("pk")}
    for spec in specs:
        counted = spec.counted if spec.counted else None
        if spec.kind == RATE:
            aggregates[f"{spec.key}__n"] = Count("pk", filter=counted)
            aggregates[f"{spec.key}__x"] = Count("pk", filter=spec.hit & spec.counted)
        elif spec.kind == MEAN:
            value = _TOKENS if spec.column == "tokens" else F(spec.column)
            aggregates[f"{spec.key}__n"] = Count("pk", filter=counted)
            aggregates[f"{spec.key}__m"] = Avg(value, filter=counted)
            aggregates[f"{spec.key}__m2"] = Avg(value * value, filter=counted)
        elif spec.kind in QUANTILES:
            aggregates[f"{spec.key}__n"] = Count(spec.column)
    row = traces.aggregate(**aggregates)
    out: dict[str, Measure] = {}
    quantiles = []
    for spec in specs:
        n = row.get(f"{spec.key}__n") or 0
        if spec.kind == RATE:
            out[spec.key] = _rate(row[f"{spec.key}__x"], n)
        elif spec.kind == MEAN:
            out[spec.key] = _mean(row[f"{spec.key}__m"], row[f"{spec.key}__m2"], n)
        elif spec.kind in QUANTILES:
            if n:
                quantiles.append((spec, n))
            else:
                out[spec.key] = Measure(None, None, 0)
    for spec, _ in quantiles:
        out[spec.key] = _quantile(traces, spec.column, QUANTILES[spec.kind])
    return row["traces"], out


def _measure_window_in_one_scan(
    specs: list[WindowMetric], traces: QuerySet[Trace]
) -> tuple[int, dict[str, Measure]]:
    """One query: the window's rows read once into a CTE, every count, rate and mean over it,
    and each percentile's order statistics at ranks computed in SQL from its count, exactly as
    stats.quantile_ranks computes them (the same IEEE double arithmetic, in the same order)."""
    columns: dict[str, Any] = {}
    for i, spec in enumerate(specs):
        if spec.kind in (RATE, MEAN):
            counted = (
                ExpressionWrapper(spec.counted, output_field=BooleanField()) if spec.counted else Value(True)
            )
            columns[f"c{i}"] = counted
        if spec.kind == RATE:
            columns[f"h{i}"] = ExpressionWrapper(spec.hit, output_field=BooleanField())
        elif spec.kind == MEAN:
            value = _TOKENS if spec.column == "tokens" else F(spec.column)
            columns[f"v{i}"] = ExpressionWrapper(value, output_field=FloatField())
        elif spec.kind in QUANTILES:
            columns[f"v{i}"] = ExpressionWrapper(F(spec.column), output_field=FloatField())
    names = list(columns)
    inner = traces.annotate(**columns).values_list(*names) if names else traces.values_list("pk")
    sql, params = inner.query.sql_with_params()
    alias = ", ".join(names) if names else "pk"
    selects, arguments, ctes = ["count(*)"], [], [f"t AS MATERIALIZED (SELECT * FROM ({sql}) AS w({alias}))"]
    for i, spec in enumerate(specs):
        if spec.kind == RATE:
            selects += [f"count(*) FILTER (WHERE c{i})", f"count(*) FILTER (WHERE c{i} AND h{i})"]
        elif spec.kind == MEAN:
            selects += [
                f"count(*) FILTER (WHERE c{i})",
                f"avg(v{i}) FILTER (WHERE c{i})",
                f"avg(v{i} * v{i}) FILTER (WHERE c{i})",
            ]
        elif spec.kind in QUANTILES:
            ctes.append(f"n{i} AS (SELECT count(v{i})::float8 AS n FROM t)")
            q = QUANTILES[spec.kind]
            selects.append(f"count(v{i})")
            selects.append(f"percentile_cont(%s::float8) WITHIN GROUP (ORDER BY v{i})")
            arguments.append(q)
            for rank in (LOW_RANK_SQL, HIGH_RANK_SQL):
                # percentile_disc(f) is the value at 1-based rank ceil(f * n): (rank - 0.5) / n picks it.
                fraction = f"(SELECT CASE WHEN n > 0 THEN ({rank} - 0.5) / n ELSE 0.5 END FROM n{i})"
                selects.append(f"percentile_disc({fraction}) WITHIN GROUP (ORDER BY v{i})")
                arguments += [q, stats.Z_95, q, q]
    statement = f"WITH {', '.join(ctes)} SELECT {', '.join(selects)} FROM t"
    with _sorting(P95) as cursor:
        cursor.execute(statement, [*params, *arguments])
        row = list(cursor.fetchone())
    count, out = int(row.pop(0)), {}
    for spec in specs:
        if spec.kind == RATE:
            n, x = row.pop(0), row.pop(0)
            out[spec.key] = _rate(int(x), int(n))
        elif spec.kind == MEAN:
            n, m, m2 = row.pop(0), row.pop(0), row.pop(0)
            out[spec.key] = _mean(m, m2, int(n))
        elif spec.kind in QUANTILES:
            n, value, low, high = row.pop(0), row.pop(0), row.pop(0), row.pop(0)
            out[spec.key] = (
                Measure(float(value), (float(low), float(high)), int(n)) if n else Measure(None, None, 0)
            )
    return count, out


def _mean(m: Any, m2: Any, n: int) -> Measure:
    if not n or m is None:
        return Measure(None, None, 0)
    m = float(m)
    variance = max(0.0, float(m2) - m * m) * n / (n - 1) if n > 1 else 0.0
    return Measure(m, stats.mean_interval_from(m, variance, n), n, variance=variance)


@contextlib.contextmanager
def _sorting(kind: str) -> Iterator[Any]:
    """A cursor; for percentiles on PostgreSQL, in a transaction whose sorts stay in memory."""
    if kind not in QUANTILES or connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(SORT_MEMORY)
        yield cursor


def _rate(successes: int, n: int, *, errored: int = 0) -> Measure:
    if not n:
        return Measure(None, None, 0, errored=errored)
    return Measure(
        successes / n, stats.wilson_interval(successes, n), n, successes=successes, errored=errored
    )


def _quantile(traces: QuerySet[Trace], column: str, q: float) -> Measure:
    """The q-quantile (linear interpolation, as gate rules compute it) and its distribution-free
    interval: two queries on PostgreSQL (a count, then the percentiles over the window)."""
    values = traces.filter(**{f"{column}__isnull": False}).values(column)
    n = values.count()
    if not n:
        return Measure(None, None, 0)
    low_rank, high_rank = stats.quantile_ranks(n, q)
    if connection.vendor == "postgresql":
        sql, params = values.query.sql_with_params()
        # percentile_disc(f) is the value at 1-based rank ceil(f * n): (rank - 0.5) / n picks it
        # exactly, whatever the floating-point rounding.
        with _sorting(P95) as cursor:
            cursor.execute(
                "SELECT percentile_cont(%s) WITHIN GROUP (ORDER BY t.v),"
                " percentile_disc(%s) WITHIN GROUP (ORDER BY t.v),"
                " percentile_disc(%s) WITHIN GROUP (ORDER BY t.v)"
                f" FROM ({sql}) AS t(v)",
                [q, (low_rank - 0.5) / n, (high_rank - 0.5) / n, *params],
            )
            value, low, high = cursor.fetchone()
    else:
        ordered = sorted(v for (v,) in values.values_list(column))
        value = stats.percentile(ordered, q * 100)
        low, high = ordered[low_rank - 1], ordered[high_rank - 1]
    return Measure(float(value), (float(low), float(high)), n)


def compare(
    spec: WindowMetric, current: Measure, reference: Measure, margin: float, direction: str = ""
) -> Comparison:
    """How ``current`` differs from ``reference``: the difference, its 95% interval, and whether
    the whole interval says worse beyond ``margin`` (or within it). Undecided when either window
    measured nothing."""
    if current.value is None or reference.value is None:
        return Comparison(None, None, worse=False, better_or_same=False)
    if spec.kind == RATE:
        found = stats.rate_difference_interval(current.successes, current.n, reference.successes, reference.n)
    elif spec.kind == MEAN:
        found = stats.mean_difference_interval(
            current.value, current.variance, current.n, reference.value, reference.variance, reference.n
        )
    else:
        found = stats.quantile_difference_interval(
            current.value, current.interval, reference.value, reference.interval
        )
    if found is None:
        return Comparison(current.value - reference.value, None, worse=False, better_or_same=False)
    difference, (low, high) = found
    if (direction or spec.direction) == "max":  # lower is better: worse means higher
        return Comparison(difference, (low, high), worse=low > margin, better_or_same=high <= margin)
    return Comparison(difference, (low, high), worse=high < -margin, better_or_same=low >= -margin)


# --- Series: one metric over consecutive windows, in two queries whatever their number ------


def bucket_sql(column: str, width_s: int) -> str:
    """The window number of a timestamp column (windows aligned on the epoch)."""
    if connection.vendor == "postgresql":
        return f"floor(extract(epoch from {column}) / {int(width_s)})::bigint"
    return f"(CAST(strftime('%%s', {column}) AS INTEGER) / {int(width_s)})"


def _values(spec: WindowMetric, traces: QuerySet[Trace]) -> QuerySet:
    """A query of (t, v) rows of traces: the time and the observation (a 0/1 hit for rates)."""
    traces = traces.order_by()
    if spec.kind == RATE:
        hit = ExpressionWrapper(spec.hit, output_field=BooleanField())
        return traces.filter(spec.counted).annotate(t=F("time"), v=hit).values_list("t", "v")
    value = _TOKENS if spec.column == "tokens" else F(spec.column)
    return (
        traces.filter(spec.counted)
        .annotate(t=F("time"), v=ExpressionWrapper(value, output_field=FloatField()))
        .filter(v__isnull=False)
        .values_list("t", "v")
    )


def series(
    spec: WindowMetric,
    traces: QuerySet[Trace],
    start: dt.datetime,
    end: dt.datetime,
    width: dt.timedelta,
    *,
    samples: QuerySet[MonitorSample] | None = None,
    grader_id: int | None = None,
) -> list[tuple[dt.datetime, Measure]]:
    """``spec`` over each window of ``width`` from ``start`` to ``end`` (windows with nothing
    measured are left out). Aggregated by window in SQL: two queries for any number of windows."""
    if spec.key == "pass_rate":
        if samples is None or grader_id is None:
            return []
        return pass_rate_series(samples, [grader_id], start, end, width).get(grader_id, [])
    width_s = int(width.total_seconds())
    traces = in_window(traces, start, end)
    rows = _values(spec, traces)
    sql, params = rows.query.sql_with_params()
    bucket = bucket_sql("w.t", width_s)
    out: dict[int, Measure] = {}
    with _sorting(spec.kind) as cursor:
        if spec.kind == RATE:
            hits = "sum(CASE WHEN w.v THEN 1 ELSE 0 END)"
            cursor.execute(f"SELECT {bucket}, count(*), {hits} FROM ({sql}) AS w GROUP BY 1", params)
            for number, n, x in cursor.fetchall():
                out[int(number)] = _rate(int(x or 0), int(n))
        elif spec.kind == MEAN:
            cursor.execute(
                f"SELECT {bucket}, count(*), avg(w.v), avg(w.v * w.v) FROM ({sql}) AS w GROUP BY 1",
                params,
            )
            for number, n, m, m2 in cursor.fetchall():
                out[int(number)] = _mean(m, m2, int(n))
        else:
            out = _quantile_series(cursor, sql, params, bucket, QUANTILES[spec.kind])
    return [
        (dt.datetime.fromtimestamp(number * width_s, tz=dt.UTC), measure)
        for number, measure in sorted(out.items())
        if measure.n
    ]


def pass_rate_series(
    samples: QuerySet[MonitorSample],
    grader_ids: list[int],
    start: dt.datetime,
    end: dt.datetime,
    width: dt.timedelta,
) -> dict[int, list[tuple[dt.datetime, Measure]]]:
    """Each grader's pass rate over each window, for several graders in one query."""
    width_s = int(width.total_seconds())
    # From the samples' side, so their own filters (monitor, window) drive the join into grades.
    rows = (
        in_window(samples, start, end)
        .filter(grades__grader_id__in=grader_ids, grades__error="", grades__passed__isnull=False)
        .order_by()
        .annotate(t=F("time"), g=F("grades__grader_id"), v=F("grades__passed"))
        .values_list("t", "g", "v")
    )
    sql, params = rows.query.sql_with_params()
    bucket = bucket_sql("w.t", width_s)
    hits = "sum(CASE WHEN w.v THEN 1 ELSE 0 END)"
    out: dict[int, list[tuple[dt.datetime, Measure]]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {bucket}, w.g, count(*), {hits} FROM ({sql}) AS w GROUP BY 1, 2 ORDER BY 1", params
        )
        for number, grader, n, x in cursor.fetchall():
            start_of = dt.datetime.fromtimestamp(int(number) * width_s, tz=dt.UTC)
            out.setdefault(int(grader), []).append((start_of, _rate(int(x or 0), int(n))))
    return out


def _quantile_series(cursor: Any, sql: str, params: Any, bucket: str, q: float) -> dict[int, Measure]:
    """Per window: the count, then only the order statistics needed (the two around the
    interpolated quantile and the interval's bounds), picked by rank in one windowed query."""
    cursor.execute(f"SELECT {bucket}, count(*) FROM ({sql}) AS w GROUP BY 1", params)
    counts = {int(number): int(n) for number, n in cursor.fetchall()}
    wanted: dict[int, set[int]] = {}
    for number, n in counts.items():
        rank = (n - 1) * q  # 0-based, as percentile() interpolates
        low, high = stats.quantile_ranks(n, q)
        wanted[number] = {int(rank) + 1, min(n, int(rank) + 2), low, high}
    ranks = sorted({r for rs in wanted.values() for r in rs})
    if not ranks:
        return {}
    placeholders = ", ".join(["%s"] * len(ranks))
    cursor.execute(
        "SELECT b, r, v FROM (SELECT b, v, row_number() OVER (PARTITION BY b ORDER BY v) AS r"
        f" FROM (SELECT {bucket} AS b, w.v AS v FROM ({sql}) AS w) AS bucketed) AS ranked"
        f" WHERE r IN ({placeholders})",
        [*params, *ranks],
    )
    found: dict[int, dict[int, float]] = {}
    for number, rank, value in cursor.fetchall():
        found.setdefault(int(number), {})[int(rank)] = float(value)
    out = {}
    for number, n in counts.items():
        at = found.get(number, {})
        rank = (n - 1) * q
        below, above = at.get(int(rank) + 1), at.get(min(n, int(rank) + 2))
        low, high = stats.quantile_ranks(n, q)
        if below is None or above is None or low not in at or high not in at:
            continue
        value = below + (above - below) * (rank - int(rank))
        out[number] = Measure(value, (at[low], at[high]), n)
    return out
