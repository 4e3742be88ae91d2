"""Run summaries: quality per grader and production signals, overall and by tier and class.

Built in one pass over the run's rows (a stream: grading_app.results.iter_case_rows), keeping
counts and sums per (tier, failure class) cell, and the values themselves only where a
percentile needs them (as arrays of doubles): a summary of 100,000 cases costs a few
megabytes, not the run's rows.
"""

from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import connection
from django.db.models import Count, Q, Sum

from datasets_app.models import Case, FailureClass
from grading_app.models import CaseResult, Grade, Grader, Run
from grading_app.results import CaseRow, iter_case_rows
from grading_app.stats import mean_interval_from, percentile, wilson_interval


class _Mean:
    __slots__ = ("n", "total")

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value

    def value(self) -> float | None:
        return self.total / self.n if self.n else None

    def merge(self, other: "_Mean") -> None:
        self.n += other.n
        self.total += other.total


class _Signals:
    """Production signals of a group of rows: counts, rates, means and percentiles."""

    MEANS = ("latency", "ttft", "cost", "refusals", "escalations", "retried", "tool_calls", "trace_steps")

    def __init__(self) -> None:
        self.cases = self.missing = self.errors = self.failed = 0
        self.latencies, self.ttfts = array("d"), array("d")
        self.latency, self.ttft, self.cost = _Mean(), _Mean(), _Mean()
        self.refusals, self.escalations = _Mean(), _Mean()
        self.retried, self.tool_calls, self.trace_steps = _Mean(), _Mean(), _Mean()

    def add(self, row: CaseRow) -> None:
        self.cases += 1
        self.missing += row.missing
        self.errors += bool(row.error) and not row.missing
        if row.failed_to_produce:
            self.failed += 1
            return
        if row.latency_ms is not None:
            self.latencies.append(row.latency_ms)
            self.latency.add(row.latency_ms)
        if row.ttft_ms is not None:
            self.ttfts.append(row.ttft_ms)
            self.ttft.add(row.ttft_ms)
        if row.cost_usd is not None:
            self.cost.add(row.cost_usd)
        if row.refused is not None:
            self.refusals.add(bool(row.refused))
        if row.escalated is not None:
            self.escalations.add(bool(row.escalated))
        self.retried.add(row.retries > 0)
        self.tool_calls.add(row.tool_calls)
        self.trace_steps.add(row.trace_steps)

    def merge(self, other: "_Signals") -> None:
        for name in ("cases", "missing", "errors", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latencies.extend(other.latencies)
        self.ttfts.extend(other.ttfts)
        for name in self.MEANS:
            getattr(self, name).merge(getattr(other, name))

    def result(self) -> dict[str, Any]:
        latencies, ttfts = sorted(self.latencies), sorted(self.ttfts)
        return {
            "cases": self.cases,
            "missing": self.missing,
            "errors": self.errors,
            "error_rate": self.failed / self.cases if self.cases else None,
            "latency_p50_ms": percentile(latencies, 50),
            "latency_p95_ms": percentile(latencies, 95),
            "latency_mean_ms": self.latency.value(),
            "ttft_p50_ms": percentile(ttfts, 50),
            "ttft_p95_ms": percentile(ttfts, 95),
            "ttft_mean_ms": self.ttft.value(),
            "cost_per_case_usd": self.cost.value(),
            "refusal_rate": self.refusals.value(),
            "escalation_rate": self.escalations.value(),
            "retry_rate": self.retried.value(),
            "tool_calls_mean": self.tool_calls.value(),
            "trace_steps_mean": self.trace_steps.value(),
        }


class _Grader:
    __slots__ = ("errors", "n", "passed", "scores")

    def __init__(self) -> None:
        self.n = self.passed = self.errors = 0
        self.scores = _Mean()


class _Group:
    """Signals and per-grader quality of one group (the run, a tier, a failure class)."""

    def __init__(self) -> None:
        self.signals = _Signals()
        self.graders: dict[str, _Grader] = defaultdict(_Grader)

    def add(self, row: CaseRow) -> None:
        self.signals.add(row)
        for slug, grade in row.grades.items():
            stats = self.graders[slug]
            if grade.error or grade.passed is None:
                stats.errors += 1
                continue
            stats.n += grade.of  # graded trials: one, or a case's repeated ones
            stats.passed += grade.passes
            if grade.score is not None:
                stats.scores.add(grade.score)

    def merge(self, other: "_Group") -> None:
        self.signals.merge(other.signals)
        for slug, theirs in other.graders.items():
            ours = self.graders[slug]
            ours.n += theirs.n
            ours.passed += theirs.passed
            ours.errors += theirs.errors
            ours.scores.merge(theirs.scores)

    def graders_result(self) -> dict[str, Any]:
        out = {}
        for slug, stats in sorted(self.graders.items()):
            interval = wilson_interval(stats.passed, stats.n)
            out[slug] = {
                "n": stats.n,
                "passed": stats.passed,
                "errors": stats.errors,
                "pass_rate": stats.passed / stats.n if stats.n else None,
                "interval": list(interval) if interval else None,
                "mean_score": stats.scores.value(),
            }
        return out

    def result(self) -> dict[str, Any]:
        return {"signals": self.signals.result(), "graders": self.graders_result()}


def _merged(groups: Iterable[_Group]) -> _Group:
    merged = _Group()
    for group in groups:
        merged.merge(group)
    return merged


FLAKY_SHOWN = 50  # cases named per grader whose trials disagree


class _Trials:
    """Per grader, over cases run several times: pass@k, pass^k, consistency, the flaky cases."""

    def __init__(self, trials: int) -> None:
        self.trials = trials
        self.graders: dict[str, dict[str, Any]] = defaultdict(
            lambda: {
                "cases": 0,
                "at": 0,
                "hat": 0,
                "steady": 0.0,
                "steady_sq": 0.0,
                "flaky": [],
                "flaky_n": 0,
            }
        )

    def add(self, row: CaseRow) -> None:
        if row.failed_to_produce:  # a trial missing or errored: missing data, never a pass
            return
        for slug, grade in row.grades.items():
            if grade.error or grade.passed is None or not grade.of:
                continue
            g, passed = self.graders[slug], grade.passes
            steady = max(passed, grade.of - passed) / grade.of
            g["cases"] += 1
            g["at"] += passed > 0
            g["hat"] += passed == row.trials  # every trial of the case graded and passed
            g["steady"] += steady
            g["steady_sq"] += steady * steady
            if 0 < passed < grade.of:
                g["flaky_n"] += 1
                if len(g["flaky"]) < FLAKY_SHOWN:
                    g["flaky"].append({"case": row.key, "passed": passed, "of": grade.of})

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for slug, g in sorted(self.graders.items()):
            n = g["cases"]
            mean = g["steady"] / n if n else None
            variance = (g["steady_sq"] - n * mean * mean) / (n - 1) if n > 1 else None
            interval = mean_interval_from(mean, max(variance, 0.0), n) if variance is not None else None
            at, hat = wilson_interval(g["at"], n), wilson_interval(g["hat"], n)
            out[slug] = {
                "cases": n,
                "pass_at_k": g["at"] / n if n else None,
                "pass_at_k_interval": list(at) if at else None,
                "pass_hat_k": g["hat"] / n if n else None,
                "pass_hat_k_interval": list(hat) if hat else None,
                "consistency": mean,
                "consistency_interval": list(interval) if interval else None,
                "flaky_cases": g["flaky_n"],
                "flaky": sorted(g["flaky"], key=lambda c: c["case"]),
            }
        return {"k": self.trials, "graders": out}


def summarise(rows: Iterable[CaseRow], trials: int = 1) -> dict[str, Any]:
    """The JSON summary stored on a run: overall, by tier and by failure class; for a run of
    several trials per case, a ``trials`` block too (per grader: pass@k, pass^k, consistency).

    Each row is counted once, in its (tier, failure class) cell; tiers, classes and the whole
    run are merges of cells (sums of sums, percentiles over the cells' values together)."""
    cells: dict[tuple[str, str], _Group] = defaultdict(_Group)
    repeated = _Trials(trials) if trials > 1 else None
    for row in rows:
        cells[row.tier, row.failure_class].add(row)
        if repeated is not None:
            repeated.add(row)
    return _summary(cells, repeated)


def _summary(cells: dict[tuple[str, str], _Group], repeated: "_Trials | None") -> dict[str, Any]:
    tiers, classes = sorted({t for t, _ in cells}), sorted({c for _, c in cells})
    overall = _merged(cells.values())
    summary = {
        "signals": overall.signals.result(),
        "graders": overall.graders_result(),
        "by_tier": {t: _merged(g for (tier, _), g in cells.items() if tier == t).result() for t in tiers},
        "by_failure_class": {
            c: _merged(g for (_, fc), g in cells.items() if fc == c).result() for c in classes
        },
    }
    if repeated is not None:
        summary["trials"] = repeated.result()
    return summary


class SummaryTap:
    """A run's rows for one reader, summarised as they pass (grading_app.jobs.finish_run): when
    a check's verdict reads the run, its summary costs no second pass over the run. ``summary``
    is set once the reader has read every row, and stays None otherwise."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.summary: dict[str, Any] | None = None

    def rows(self) -> Iterator[CaseRow]:
        cells: dict[tuple[str, str], _Group] = defaultdict(_Group)
        repeated = _Trials(self.run.trials) if self.run.trials > 1 else None
        for row in iter_case_rows(self.run):
            cells[row.tier, row.failure_class].add(row)
            if repeated is not None:
                repeated.add(row)
            yield row
        self.summary = _summary(cells, repeated)


def evaluation_cost(run: Run) -> dict[str, Any] | None:
    """What evaluating the run cost on top of the candidate's own calls (which are the results'
    cost_usd): its judges' calls (an answer reused from the cache cost nothing) and its
    simulated users' turns (booked on their steps of the trace). None for a run with neither,
    at the price of no query."""
    judged = any(g.get("rubric_version") for g in run.grader_snapshot)
    if not judged and not run.persona_versions:
        return None
    cost: dict[str, Any] = {}
    if judged:
        fresh = Q(cached=False)
        spent = Grade.objects.filter(case_result__run=run, rubric_version__isnull=False).aggregate(
            n_calls=Count("pk", filter=fresh),
            n_cached=Count("pk", filter=Q(cached=True)),
            n_input_tokens=Sum("input_tokens", filter=fresh),
            n_output_tokens=Sum("output_tokens", filter=fresh),
            n_cost_usd=Sum("cost_usd", filter=fresh),
        )  # (named apart from the fields: an aggregate may not share a filtered field's name)
        cost["judges"] = {name.removeprefix("n_"): value or 0 for name, value in spent.items()}
    if run.persona_versions:
        users = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
        traces = CaseResult.objects.filter(run=run).values_list("trace", flat=True)
        for trace in traces.iterator(chunk_size=500):
            for step in trace if isinstance(trace, list) else ():
                usage = step.get("usage") if isinstance(step, dict) and step.get("simulated_by") else None
                for name, value in usage.items() if isinstance(usage, dict) else ():
                    if name in users and isinstance(value, int | float) and not isinstance(value, bool):
                        users[name] += value
        cost["simulated_users"] = users
    cost["cost_usd"] = round(sum(part["cost_usd"] for part in cost.values()), 6)
    return cost


def summarise_run(run: Run) -> dict[str, Any]:
    """The run's summary: aggregated by PostgreSQL in two queries where it runs (the finaliser
    then reads no row of the run), else summarise() over the streamed rows. The two agree figure
    for figure (tests/grading/test_summary.py compares them on PostgreSQL)."""
    if connection.vendor != "postgresql" or run.trials > 1:
        # Repeated trials are merged per case as they are read: the streamed summary does that.
        return summarise(iter_case_rows(run), trials=run.trials)
    signals, graders = _aggregated(run.pk)
    return {
        "signals": signals[None] if None in signals else _Signals().result(),
        "graders": graders.get(None, {}),
        "by_tier": {
            t: {"signals": signals[("tier", t)], "graders": graders.get(("tier", t), {})}
            for t in sorted(k[1] for k in signals if k and k[0] == "tier")
        },
        "by_failure_class": {
            c: {"signals": signals[("class", c)], "graders": graders.get(("class", c), {})}
            for c in sorted(k[1] for k in signals if k and k[0] == "class")
        },
    }


PRODUCED = "NOT r.missing AND r.error = ''"
SIGNALS_SQL = f"""
SELECT GROUPING(c.tier), GROUPING(fc.slug), c.tier, fc.slug,
    count(*),
    count(*) FILTER (WHERE r.missing),
    count(*) FILTER (WHERE r.error <> '' AND NOT r.missing),
    count(*) FILTER (WHERE r.missing OR r.error <> ''),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY r.latency_ms) FILTER (WHERE {PRODUCED}),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY r.latency_ms) FILTER (WHERE {PRODUCED}),
    avg(r.latency_ms) FILTER (WHERE {PRODUCED}),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY r.ttft_ms) FILTER (WHERE {PRODUCED}),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY r.ttft_ms) FILTER (WHERE {PRODUCED}),
    avg(r.ttft_ms) FILTER (WHERE {PRODUCED}),
    avg(r.cost_usd) FILTER (WHERE {PRODUCED}),
    (avg(r.refused::int) FILTER (WHERE {PRODUCED}))::float8,
    (avg(r.escalated::int) FILTER (WHERE {PRODUCED}))::float8,
    (avg((r.retries > 0)::int) FILTER (WHERE {PRODUCED}))::float8,
    (avg(r.tool_calls) FILTER (WHERE {PRODUCED}))::float8,
    (avg(r.trace_steps) FILTER (WHERE {PRODUCED}))::float8
FROM {{results}} r
JOIN {{cases}} c ON c.id = r.case_id
JOIN {{classes}} fc ON fc.id = c.failure_class_id
WHERE r.run_id = %s
GROUP BY GROUPING SETS ((), (c.tier), (fc.slug))
"""
GRADED = "g.error = '' AND g.passed IS NOT NULL"
GRADERS_SQL = f"""
SELECT GROUPING(c.tier), GROUPING(fc.slug), c.tier, fc.slug, gr.slug,
    count(*) FILTER (WHERE {GRADED}),
    count(*) FILTER (WHERE {GRADED} AND g.passed),
    count(*) FILTER (WHERE NOT ({GRADED})),
    avg(g.score) FILTER (WHERE {GRADED} AND g.score IS NOT NULL)
FROM {{grades}} g
JOIN {{graders}} gr ON gr.id = g.grader_id
JOIN {{results}} r ON r.id = g.case_result_id
JOIN {{cases}} c ON c.id = r.case_id
JOIN {{classes}} fc ON fc.id = c.failure_class_id
WHERE r.run_id = %s
GROUP BY GROUPING SETS ((gr.slug), (c.tier, gr.slug), (fc.slug, gr.slug))
"""
SIGNAL_NAMES = (
    "latency_p50_ms", "latency_p95_ms", "latency_mean_ms", "ttft_p50_ms", "ttft_p95_ms",
    "ttft_mean_ms", "cost_per_case_usd", "refusal_rate", "escalation_rate", "retry_rate",
    "tool_calls_mean", "trace_steps_mean",
)  # fmt: skip


def _group(by_tier: int, by_class: int, tier: str, failure_class: str) -> tuple[str, str] | None:
    """The GROUPING SETS row's group: None for the whole run (GROUPING is 1 for a rolled-up key)."""
    if not by_tier:
        return ("tier", tier)
    if not by_class:
        return ("class", failure_class)
    return None


def _aggregated(run_id: int) -> tuple[dict, dict]:
    tables = {
        "results": CaseResult._meta.db_table,
        "cases": Case._meta.db_table,
        "classes": FailureClass._meta.db_table,
        "grades": Grade._meta.db_table,
        "graders": Grader._meta.db_table,
    }
    signals: dict[Any, dict[str, Any]] = {}
    graders: dict[Any, dict[str, Any]] = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(SIGNALS_SQL.format(**tables), [run_id])
        for by_tier, by_class, tier, failure_class, cases, missing, errors, failed, *values in cursor:
            signals[_group(by_tier, by_class, tier, failure_class)] = {
                "cases": cases,
                "missing": missing,
                "errors": errors,
                "error_rate": failed / cases if cases else None,
                **dict(zip(SIGNAL_NAMES, values, strict=True)),
            }
        cursor.execute(GRADERS_SQL.format(**tables), [run_id])
        for by_tier, by_class, tier, failure_class, slug, n, passed, errors, score in sorted(
            cursor.fetchall(), key=lambda row: row[4]
        ):
            interval = wilson_interval(passed, n)
            graders[_group(by_tier, by_class, tier, failure_class)][slug] = {
                "n": n,
                "passed": passed,
                "errors": errors,
                "pass_rate": passed / n if n else None,
                "interval": list(interval) if interval else None,
                "mean_score": score,
            }
    return signals, graders
