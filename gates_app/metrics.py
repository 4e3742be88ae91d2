"""The rule-metric registry: how each metric of DESIGN.md section 8 reads a case row.

A metric turns each case row into an observation (a number, or None when the case does
not count, e.g. no grade from that grader) and aggregates them one way. Rules name metrics
by key, so adding one needs no migration.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from grading_app.results import CaseRow

RATE, MEAN, P50, P95, ALL = "rate", "mean", "p50", "p95", "all"


class Observation(NamedTuple):  # a tuple: made for every rule and row of both runs
    value: float | None  # None: the case does not count for this metric
    errored: bool = False  # the measurement itself failed (e.g. the grader errored)


def every_row(row: CaseRow) -> bool:
    """The cases a metric is about when it does not say: all of them."""
    return True


@dataclass(frozen=True)
class MetricSpec:
    key: str
    aggregate: str  # rate | mean | p50 | p95 | all
    direction: str  # "min": higher is better; "max": lower is better
    observe: Callable[[CaseRow, str | None], Observation]
    needs_grader: bool = False
    needs_threshold: bool = True
    counts_failed_cases: bool = False  # error_rate looks at the failures themselves
    needs_trials: bool = False  # pass^k and consistency: undecided on a run of one trial per case
    # Which cases the metric is about at all; a missing case outside them is not lacking data.
    applies: Callable[[CaseRow], bool] = every_row
    description: str = ""


def _grade_passed(row: CaseRow, grader: str | None) -> Observation:
    grade = row.grades.get(grader or "")
    if grade is None:
        return Observation(None)
    if grade.error or grade.passed is None:
        return Observation(None, errored=True)
    if grade.passed_n is not None:  # several trials: the share of them that passed
        return Observation(grade.passed_n / grade.of)
    return Observation(1.0 if grade.passed else 0.0)


def _trials_of(row: CaseRow, grader: str | None) -> tuple[int, int] | Observation:
    """(passed, graded) trials of the grader on the case, or the Observation that ends there."""
    grade = row.grades.get(grader or "")
    if grade is None:
        return Observation(None)
    if grade.error or grade.passed is None:
        return Observation(None, errored=True)
    return grade.passes, grade.of


def _all_trials_passed(row: CaseRow, grader: str | None) -> Observation:
    """pass^k: every one of the case's k trials was graded and passed."""
    trials = _trials_of(row, grader)
    if isinstance(trials, Observation):
        return trials
    return Observation(1.0 if trials[0] == row.trials else 0.0)


def _any_trial_passed(row: CaseRow, grader: str | None) -> Observation:
    """pass@k: at least one of the case's trials passed."""
    trials = _trials_of(row, grader)
    return trials if isinstance(trials, Observation) else Observation(1.0 if trials[0] else 0.0)


def _consistency(row: CaseRow, grader: str | None) -> Observation:
    """The share of the case's graded trials that agree with its most common outcome."""
    trials = _trials_of(row, grader)
    if isinstance(trials, Observation):
        return trials
    passed, graded = trials
    return Observation(max(passed, graded - passed) / graded)


def _grade_score(row: CaseRow, grader: str | None) -> Observation:
    grade = row.grades.get(grader or "")
    if grade is None:
        return Observation(None)
    if grade.error or grade.score is None:
        return Observation(None, errored=True)
    return Observation(grade.score)


def _pinned(row: CaseRow, _: str | None) -> Observation:
    if not row.pinned:
        return Observation(None)
    if any(g.error or g.passed is None for g in row.grades.values()):
        return Observation(None, errored=True)
    return Observation(1.0 if all(g.passed for g in row.grades.values()) else 0.0)


def _field(name: str) -> Callable[[CaseRow, str | None], Observation]:
    def observe(row: CaseRow, _: str | None) -> Observation:
        value = getattr(row, name)
        return Observation(None if value is None else float(value))

    return observe


def _flag(name: str) -> Callable[[CaseRow, str | None], Observation]:
    def observe(row: CaseRow, _: str | None) -> Observation:
        value = getattr(row, name)  # a bool, or of several trials the share that were true
        return Observation(None if value is None else float(value))

    return observe


def _tokens(row: CaseRow, _: str | None) -> Observation:
    if row.input_tokens is None and row.output_tokens is None:
        return Observation(None)
    return Observation(float((row.input_tokens or 0) + (row.output_tokens or 0)))


_METRICS = {
    spec.key: spec
    for spec in [
        MetricSpec(
            "pass_rate",
            RATE,
            "min",
            _grade_passed,
            needs_grader=True,
            description="Share of graded cases the grader passed (of k trials: the mean share per case).",
        ),
        MetricSpec(
            "mean_score",
            MEAN,
            "min",
            _grade_score,
            needs_grader=True,
            description="Mean grader score in [0, 1].",
        ),
        MetricSpec(
            "pass_hat_k",
            RATE,
            "min",
            _all_trials_passed,
            needs_grader=True,
            needs_trials=True,
            description="pass^k: share of cases whose every trial the grader passed (a run of k trials).",
        ),
        MetricSpec(
            "pass_at_k",
            RATE,
            "min",
            _any_trial_passed,
            needs_grader=True,
            needs_trials=True,
            description="pass@k: share of cases with at least one trial the grader passed.",
        ),
        MetricSpec(
            "consistency",
            MEAN,
            "min",
            _consistency,
            needs_grader=True,
            needs_trials=True,
            description="Mean share of a case's trials that agree with its most common outcome (1: steady).",
        ),
        MetricSpec(
            "pinned_pass",
            ALL,
            "min",
            _pinned,
            needs_threshold=False,
            applies=lambda row: row.pinned,
            description="Every pinned case in scope passes all its graders.",
        ),
        MetricSpec(
            "error_rate",
            RATE,
            "max",
            lambda row, _: Observation(float(row.failed_to_produce)),
            counts_failed_cases=True,
            description="Share of cases missing or errored.",
        ),
        MetricSpec("latency_p50_ms", P50, "max", _field("latency_ms")),
        MetricSpec("latency_p95_ms", P95, "max", _field("latency_ms")),
        MetricSpec("ttft_p95_ms", P95, "max", _field("ttft_ms")),
        MetricSpec("cost_per_case_usd", MEAN, "max", _field("cost_usd")),
        MetricSpec("tokens_per_case", MEAN, "max", _tokens),
        MetricSpec("refusal_rate", RATE, "max", _flag("refused")),
        MetricSpec("escalation_rate", RATE, "max", _flag("escalated")),
        MetricSpec("retry_rate", RATE, "max", lambda row, _: Observation(float(row.retries > 0))),
        MetricSpec("tool_calls_mean", MEAN, "max", _field("tool_calls")),
        MetricSpec("trace_steps_mean", MEAN, "max", _field("trace_steps")),
    ]
}


def get_metric(key: str) -> MetricSpec:
    """The spec for a metric key; KeyError with a message listing the known keys."""
    try:
        return _METRICS[key]
    except KeyError:
        raise KeyError(f"Unknown metric {key!r} (known: {', '.join(sorted(_METRICS))}).") from None


def metric_keys() -> list[str]:
    return sorted(_METRICS)
