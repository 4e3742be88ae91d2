"""Run summaries: quality per grader and production signals, overall and by tier and class.

Built in one pass over the run's rows (a stream: grading_app.results.iter_case_rows), keeping
counts and sums per (tier, failure class) cell, and the values themselves only where a
percentile needs them (as arrays of doubles): a summary of 100,000 cases costs a few
megabytes, not the run's rows.
"""

from array import array
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from grading_app.results import CaseRow
from grading_app.stats import percentile, wilson_interval


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
            stats.n += 1
            stats.passed += grade.passed
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


def summarise(rows: Iterable[CaseRow]) -> dict[str, Any]:
    """The JSON summary stored on a run: overall, by tier and by failure class.

    Each row is counted once, in its (tier, failure class) cell; tiers, classes and the whole
    run are merges of cells (sums of sums, percentiles over the cells' values together)."""
    cells: dict[tuple[str, str], _Group] = defaultdict(_Group)
    for row in rows:
        cells[row.tier, row.failure_class].add(row)
    tiers, classes = sorted({t for t, _ in cells}), sorted({c for _, c in cells})
    overall = _merged(cells.values())
    return {
        "signals": overall.signals.result(),
        "graders": overall.graders_result(),
        "by_tier": {t: _merged(g for (tier, _), g in cells.items() if tier == t).result() for t in tiers},
        "by_failure_class": {
            c: _merged(g for (_, fc), g in cells.items() if fc == c).result() for c in classes
        },
    }
