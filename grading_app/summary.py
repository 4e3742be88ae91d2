"""Run summaries: quality per grader and production signals, overall and by tier and class."""

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from grading_app.results import CaseRow
from grading_app.stats import mean, percentile, wilson_interval


def _rate(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _signals(rows: list[CaseRow]) -> dict[str, Any]:
    produced = [r for r in rows if not r.failed_to_produce]
    latencies = [r.latency_ms for r in produced if r.latency_ms is not None]
    ttfts = [r.ttft_ms for r in produced if r.ttft_ms is not None]
    costs = [r.cost_usd for r in produced if r.cost_usd is not None]
    return {
        "cases": len(rows),
        "missing": sum(1 for r in rows if r.missing),
        "errors": sum(1 for r in rows if r.error and not r.missing),
        "error_rate": _rate([r.failed_to_produce for r in rows]),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "latency_mean_ms": mean(latencies),
        "ttft_p50_ms": percentile(ttfts, 50),
        "ttft_p95_ms": percentile(ttfts, 95),
        "ttft_mean_ms": mean(ttfts),
        "cost_per_case_usd": mean(costs),
        "refusal_rate": _rate([bool(r.refused) for r in produced if r.refused is not None]),
        "escalation_rate": _rate([bool(r.escalated) for r in produced if r.escalated is not None]),
        "retry_rate": _rate([r.retries > 0 for r in produced]),
        "tool_calls_mean": mean([r.tool_calls for r in produced]),
        "trace_steps_mean": mean([r.trace_steps for r in produced]),
    }


def _graders(rows: Iterable[CaseRow]) -> dict[str, Any]:
    passed: dict[str, list[bool]] = defaultdict(list)
    scores: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    for row in rows:
        for slug, grade in row.grades.items():
            if grade.error or grade.passed is None:
                errors[slug] += 1
                continue
            passed[slug].append(grade.passed)
            if grade.score is not None:
                scores[slug].append(grade.score)
    out = {}
    for slug in sorted(set(passed) | set(errors)):
        n = len(passed[slug])
        successes = sum(passed[slug])
        interval = wilson_interval(successes, n)
        out[slug] = {
            "n": n,
            "passed": successes,
            "errors": errors[slug],
            "pass_rate": successes / n if n else None,
            "interval": list(interval) if interval else None,
            "mean_score": mean(scores[slug]),
        }
    return out


def _grouped(rows: list[CaseRow], attribute: str) -> dict[str, Any]:
    groups: dict[str, list[CaseRow]] = defaultdict(list)
    for row in rows:
        groups[getattr(row, attribute)].append(row)
    return {
        name: {"signals": _signals(members), "graders": _graders(members)}
        for name, members in sorted(groups.items())
    }


def summarise(rows: list[CaseRow]) -> dict[str, Any]:
    """The JSON summary stored on a run: overall, by tier and by failure class."""
    return {
        "signals": _signals(rows),
        "graders": _graders(rows),
        "by_tier": _grouped(rows, "tier"),
        "by_failure_class": _grouped(rows, "failure_class"),
    }
