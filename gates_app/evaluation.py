"""Pure rule evaluation: case rows and rules in, a rule table and a verdict out. No writes.

Verdict semantics are DESIGN.md section 5: missing data is never a pass.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gates_app import metrics
from gates_app.choices import DecideOn, Outcome, RuleMode, Severity, Verdict
from grading_app.results import CaseRow
from grading_app.stats import mean, mean_interval, paired_difference_interval, percentile, wilson_interval


@dataclass(frozen=True)
class RuleSpec:
    """A gate rule as plain data (built from a GateRule by the service)."""

    name: str
    metric: str
    severity: str = Severity.BLOCK
    grader: str | None = None
    scope: dict[str, Any] = field(default_factory=dict)
    mode: str = RuleMode.ABSOLUTE
    threshold: float | None = None
    direction: str = ""
    margin: float = 0.0
    strict: bool = False
    decide_on: str = DecideOn.POINT
    blocked_reason: str = ""  # set when the rule cannot be decided at all (unapproved rubric)


@dataclass(frozen=True)
class Evaluation:
    verdict: str
    rules: list[dict[str, Any]]


def in_scope(row: CaseRow, scope: dict[str, Any]) -> bool:
    """A case is in scope when it matches every scope key given (tags: any of them)."""
    for key in ("tier", "failure_class", "risk"):
        wanted = scope.get(key)
        if wanted and getattr(row, key) not in (wanted if isinstance(wanted, list) else [wanted]):
            return False
    tags = scope.get("tags")
    return not (tags and not set(tags) & set(row.tags))


def _aggregate(spec: metrics.MetricSpec, values: list[float]) -> tuple[float | None, list | None]:
    """Point value and 95% interval (Wilson for rates, normal for means, none for percentiles)."""
    if not values:
        return None, None
    if spec.aggregate == metrics.RATE:
        interval = wilson_interval(round(sum(values)), len(values))
        return sum(values) / len(values), list(interval) if interval else None
    if spec.aggregate == metrics.MEAN:
        interval = mean_interval(values)
        return mean(values), list(interval) if interval else None
    if spec.aggregate == metrics.ALL:
        return min(values), None
    return percentile(values, 50 if spec.aggregate == metrics.P50 else 95), None


def _clears(value: float, threshold: float, direction: str) -> bool:
    return value >= threshold if direction == "min" else value <= threshold


def _observe(
    rule: RuleSpec, spec: metrics.MetricSpec, rows: list[CaseRow]
) -> tuple[dict[int, float], int, int]:
    """Per-case values by case id, plus how many cases were missing and how many errored."""
    values: dict[int, float] = {}
    missing = errored = 0
    for row in rows:
        if row.failed_to_produce and not spec.counts_failed_cases:
            missing += 1
            continue
        observation = spec.observe(row, rule.grader)
        if observation.errored:
            errored += 1
        elif observation.value is not None:
            values[row.case_id] = observation.value
    return values, missing, errored


def evaluate_rule(
    rule: RuleSpec,
    rows: list[CaseRow],
    baseline_rows: list[CaseRow] | None,
    missing_tolerance: float,
    pinned_not_run: Sequence[CaseRow] = (),
) -> dict[str, Any]:
    """One line of the rule table (the API's ``rules`` item, plus notes).

    ``pinned_not_run`` are the dataset's pinned cases the run did not include (not active):
    the pinned rule cannot pass while one of them is in its scope.
    """
    spec = metrics.get_metric(rule.metric)
    direction = rule.direction or spec.direction
    scoped = [row for row in rows if in_scope(row, rule.scope) and spec.applies(row)]
    values, missing, errored = _observe(rule, spec, scoped)
    value, interval = _aggregate(spec, list(values.values()))
    result: dict[str, Any] = {
        "name": rule.name,
        "metric": rule.metric,
        "severity": rule.severity,
        "mode": rule.mode,
        "grader": rule.grader,
        "scope": rule.scope,
        "direction": direction,
        "outcome": Outcome.UNDECIDED,
        "value": value,
        "baseline": None,
        "threshold": rule.threshold,
        "margin": rule.margin if rule.mode == RuleMode.NO_REGRESSION else None,
        "interval": interval,
        "n": len(values),
        "missing": missing,
        "errored": errored,
        "note": "",
    }

    def decide(outcome: str, note: str = "") -> dict[str, Any]:
        result["outcome"] = outcome
        result["note"] = note
        return result

    if rule.blocked_reason:
        return decide(Outcome.UNDECIDED, rule.blocked_reason)
    if spec.aggregate == metrics.ALL:
        not_run = [row for row in pinned_not_run if in_scope(row, rule.scope)]
        return _decide_pinned(scoped, not_run, result, decide)
    lacking = missing + errored
    if scoped and lacking / len(scoped) > missing_tolerance:
        return decide(
            Outcome.UNDECIDED,
            f"{missing} missing and {errored} errored of {len(scoped)} cases in scope "
            f"(tolerance {missing_tolerance:.0%})",
        )
    if value is None:
        return decide(Outcome.UNDECIDED, "no measurable cases in scope")
    if rule.mode == RuleMode.NO_REGRESSION:
        return _decide_regression(rule, spec, direction, values, baseline_rows, result, decide)

    threshold = rule.threshold
    if rule.decide_on == DecideOn.INTERVAL and interval is not None:
        low, high = interval
        worst, best = (low, high) if direction == "min" else (high, low)
        if _clears(worst, threshold, direction):
            return decide(Outcome.PASS)
        if not _clears(best, threshold, direction):
            return decide(Outcome.FAIL)
        return decide(Outcome.UNDECIDED, "the 95% interval straddles the threshold")
    return decide(Outcome.PASS if _clears(value, threshold, direction) else Outcome.FAIL)


NAMED_CASES = 10  # how many case keys a note names before "and N more"


def _named(keys: list[str]) -> str:
    shown = ", ".join(keys[:NAMED_CASES])
    return shown + (f" and {len(keys) - NAMED_CASES} more" if len(keys) > NAMED_CASES else "")


def _decide_pinned(
    scoped: list[CaseRow], not_run: Sequence[CaseRow], result: dict[str, Any], decide: Any
) -> dict[str, Any]:
    """Every pinned case in scope passes every grader that applies to it.

    A pinned case never silently stops counting: one that was not run (not active), produced
    nothing, has no grader that applies, or whose grade errored makes the rule undecided,
    and the note names it. Any pinned case that was graded and failed fails the rule.
    """
    failing, ungradable, passed = [], [], 0
    for row in sorted(scoped, key=lambda r: r.key):
        if row.failed_to_produce:
            ungradable.append(f"{row.key} ({row.error or 'missing'})")
        elif not row.grades:
            ungradable.append(f"{row.key} (no grader applies)")
        elif any(g.error or g.passed is None for g in row.grades.values()):
            ungradable.append(f"{row.key} (a grade errored)")
        elif all(g.passed for g in row.grades.values()):
            passed += 1
        else:
            failing.append(row.key)
    ungradable += [f"{row.key} ({row.error})" for row in sorted(not_run, key=lambda r: r.key)]
    measured = passed + len(failing)
    result.update(
        value=None if not measured else (0.0 if failing else 1.0),
        threshold=1.0,
        n=measured,
        missing=len(ungradable),
        errored=0,
        cases_failing=failing,
        cases_undecided=[entry.split(" (", 1)[0] for entry in ungradable],
    )
    notes = []
    if failing:
        notes.append(f"failing: {_named(failing)}")
    if ungradable:
        notes.append(f"cannot be graded: {_named(ungradable)}")
    if failing:
        return decide(Outcome.FAIL, "; ".join(notes))
    if ungradable:
        return decide(Outcome.UNDECIDED, "; ".join(notes))
    if not measured:
        return decide(Outcome.PASS, "no pinned cases in scope")
    return decide(Outcome.PASS)


def _decide_regression(
    rule: RuleSpec,
    spec: metrics.MetricSpec,
    direction: str,
    values: dict[int, float],
    baseline_rows: list[CaseRow] | None,
    result: dict[str, Any],
    decide: Any,
) -> dict[str, Any]:
    """Paired comparison with the baseline on the cases both runs measured."""
    if baseline_rows is None:
        return decide(Outcome.PASS, "no baseline yet: nothing to regress from")
    scoped_base = [row for row in baseline_rows if in_scope(row, rule.scope) and spec.applies(row)]
    base_values, _, _ = _observe(rule, spec, scoped_base)
    result["baseline"], _ = _aggregate(spec, list(base_values.values()))
    shared = sorted(set(values) & set(base_values))
    if not shared:
        return decide(Outcome.UNDECIDED, "no cases measured by both candidate and baseline")
    sign = 1.0 if direction == "min" else -1.0  # improvement is positive either way
    if rule.strict:
        regressed = [c for c in shared if sign * (values[c] - base_values[c]) < 0]
        note = f"{len(regressed)} case(s) got worse than the baseline" if regressed else ""
        return decide(Outcome.FAIL if regressed else Outcome.PASS, note)
    if spec.aggregate in (metrics.P50, metrics.P95):
        # Percentiles do not pair case by case: compare the aggregates within the margin.
        candidate = _aggregate(spec, [values[c] for c in shared])[0]
        baseline = _aggregate(spec, [base_values[c] for c in shared])[0]
        ok = sign * (candidate - baseline) >= -rule.margin
        return decide(Outcome.PASS if ok else Outcome.FAIL)
    # Improvement is positive either way: flip "lower is better" metrics before pairing.
    average, interval = paired_difference_interval(
        [sign * values[c] for c in shared], [sign * base_values[c] for c in shared]
    )
    result["interval"] = list(interval) if interval else None
    result["paired_difference"] = average
    if interval is None or interval[0] == interval[1]:
        return decide(Outcome.PASS if average >= -rule.margin else Outcome.FAIL)
    low, high = interval
    if low >= -rule.margin:
        return decide(Outcome.PASS)
    if high < -rule.margin:
        return decide(Outcome.FAIL)
    return decide(Outcome.UNDECIDED, "the paired 95% interval straddles the margin")


def verdict_for(rule_results: list[dict[str, Any]]) -> str:
    """DESIGN.md section 5: fail > inconclusive > warn > pass; inspect rules never decide."""
    block = [r["outcome"] for r in rule_results if r["severity"] == Severity.BLOCK]
    warn = [r["outcome"] for r in rule_results if r["severity"] == Severity.WARN]
    if Outcome.FAIL in block:
        return Verdict.FAIL
    if Outcome.UNDECIDED in block:
        return Verdict.INCONCLUSIVE
    if any(outcome != Outcome.PASS for outcome in warn):
        return Verdict.WARN
    return Verdict.PASS


def evaluate(
    rules: list[RuleSpec],
    rows: list[CaseRow],
    baseline_rows: list[CaseRow] | None,
    missing_tolerance: float = 0.0,
    pinned_not_run: Sequence[CaseRow] = (),
) -> Evaluation:
    """The whole rule table and its verdict."""
    results = [evaluate_rule(rule, rows, baseline_rows, missing_tolerance, pinned_not_run) for rule in rules]
    return Evaluation(verdict=verdict_for(results), rules=results)


CHANGED_CASES_SHOWN = 50


def trace_deltas(rows: list[CaseRow], baseline_rows: list[CaseRow] | None) -> dict[str, Any]:
    """Per failure class: change of mean tool calls, trace steps, retry and refusal rates
    against the baseline, and the cases (same case, both produced) whose tool sequence changed."""
    if baseline_rows is None:
        return {}

    def means(members: list[CaseRow]) -> dict[str, float | None]:
        produced = [r for r in members if not r.failed_to_produce]
        return {
            "tool_calls_mean": mean([r.tool_calls for r in produced]),
            "trace_steps_mean": mean([r.trace_steps for r in produced]),
            "retry_rate": mean([float(r.retries > 0) for r in produced]),
            "refusal_rate": mean([float(bool(r.refused)) for r in produced if r.refused is not None]),
        }

    grouped: dict[str, dict[str, list[CaseRow]]] = defaultdict(lambda: {"c": [], "b": []})
    for row in rows:
        grouped[row.failure_class]["c"].append(row)
    for row in baseline_rows:
        grouped[row.failure_class]["b"].append(row)
    base_sequences = {r.case_id: r.tool_sequence for r in baseline_rows if not r.failed_to_produce}
    deltas: dict[str, Any] = {}
    for failure_class, members in sorted(grouped.items()):
        candidate, baseline = means(members["c"]), means(members["b"])
        entry: dict[str, Any] = {
            name: {
                "candidate": candidate[name],
                "baseline": baseline[name],
                "delta": None
                if candidate[name] is None or baseline[name] is None
                else candidate[name] - baseline[name],
            }
            for name in candidate
        }
        changed = [
            {"case": r.key, "baseline": base_sequences[r.case_id], "candidate": r.tool_sequence}
            for r in sorted(members["c"], key=lambda r: r.key)
            if not r.failed_to_produce
            and r.case_id in base_sequences
            and base_sequences[r.case_id] != r.tool_sequence
        ]
        entry["tool_sequence_changed"] = {"count": len(changed), "cases": changed[:CHANGED_CASES_SHOWN]}
        deltas[failure_class] = entry
    return deltas
