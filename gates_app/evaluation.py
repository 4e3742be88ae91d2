"""Pure rule evaluation: case rows and rules in, a rule table and a verdict out. No writes.

Rows are read once, as a stream in case id order, candidate and baseline side by side
(pair_by_case): each rule keeps counts, and values only where its aggregate needs them, so a
verdict over 100,000 cases holds a few arrays of doubles, never the runs' rows.

Verdict semantics are DESIGN.md section 5: missing data is never a pass.
"""

from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gates_app import metrics
from gates_app.choices import DecideOn, Outcome, RuleMode, Severity, Verdict
from gates_app.pairing import pair_by_case
from gates_app.trace_deltas import TraceDeltas
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
    trace_deltas: dict[str, Any] = field(default_factory=dict)


def in_scope(row: CaseRow, scope: dict[str, Any]) -> bool:
    """A case is in scope when it matches every scope key given (tags: any of them)."""
    for key in ("tier", "failure_class", "risk"):
        wanted = scope.get(key)
        if wanted and getattr(row, key) not in (wanted if isinstance(wanted, list) else [wanted]):
            return False
    tags = scope.get("tags")
    return not (tags and not set(tags) & set(row.tags))


def scope_filter(rule: RuleSpec, spec: metrics.MetricSpec) -> Callable[[CaseRow], bool] | None:
    """in_scope(row, rule.scope) and spec.applies(row) as one function built once per rule
    (None: every row), since a verdict asks it for every row of both runs."""
    tests: list[Callable[[CaseRow], bool]] = []
    for key in ("tier", "failure_class", "risk"):
        wanted = rule.scope.get(key)
        if wanted:
            allowed = frozenset(wanted if isinstance(wanted, list) else [wanted])
            tests.append(lambda row, key=key, allowed=allowed: getattr(row, key) in allowed)
    if tags := rule.scope.get("tags"):
        wanted_tags = frozenset(tags)
        tests.append(lambda row: not wanted_tags.isdisjoint(row.tags))
    if spec.applies is not metrics.every_row:
        tests.append(spec.applies)
    if not tests:
        return None
    if len(tests) == 1:
        return tests[0]
    return lambda row: all(test(row) for test in tests)


class _Values:
    """One side's observations of a rule: counts for rates, the values where an aggregate
    needs them (means, percentiles), as doubles in case id order."""

    def __init__(self, spec: metrics.MetricSpec) -> None:
        self.keep = spec.aggregate != metrics.RATE
        self.n = 0
        self.total = 0.0
        self.values = array("d")

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        if self.keep:
            self.values.append(value)


def _aggregate(spec: metrics.MetricSpec, values: _Values) -> tuple[float | None, list | None]:
    """Point value and 95% interval (Wilson for rates, normal for means, none for percentiles)."""
    if not values.n:
        return None, None
    if spec.aggregate == metrics.RATE:
        interval = wilson_interval(round(values.total), values.n)
        return values.total / values.n, list(interval) if interval else None
    if spec.aggregate == metrics.MEAN:
        interval = mean_interval(values.values)
        return mean(values.values), list(interval) if interval else None
    if spec.aggregate == metrics.ALL:
        return min(values.values), None
    return percentile(values.values, 50 if spec.aggregate == metrics.P50 else 95), None


def _clears(value: float, threshold: float, direction: str) -> bool:
    return value >= threshold if direction == "min" else value <= threshold


class _RuleState:
    """What one rule has seen of the candidate (and the baseline) so far."""

    def __init__(self, rule: RuleSpec, with_baseline: bool) -> None:
        self.rule = rule
        self.spec = metrics.get_metric(rule.metric)
        self.direction = rule.direction or self.spec.direction
        self.sign = 1.0 if self.direction == "min" else -1.0  # improvement is positive either way
        self.matches = scope_filter(rule, self.spec)
        self.scoped = self.missing = self.errored = 0
        self.values = _Values(self.spec)
        self.pinned_rows: list[CaseRow] = []  # the pinned rule names its cases
        self.paired = with_baseline and rule.mode == RuleMode.NO_REGRESSION
        self.base_values = _Values(self.spec)
        self.shared = self.regressed = 0
        self.shared_candidate, self.shared_baseline = array("d"), array("d")
        self.most_trials = 0  # pass^k and consistency are undecided on a run of single trials
        # Read for every row of both runs: looked up once here rather than per row.
        self._observe_row = self.spec.observe
        self._grader = rule.grader
        self._skips_failed = not self.spec.counts_failed_cases
        self._keeps_rows = self.spec.aggregate == metrics.ALL

    def _observe(self, row: CaseRow | None) -> tuple[bool, float | None]:
        """(in scope, value): the value is None where the case counts as missing or errored."""
        if row is None or not (self.matches is None or self.matches(row)):
            return False, None
        if (row.missing or row.error) and self._skips_failed:
            return True, None
        observation = self._observe_row(row, self._grader)
        return True, None if observation.errored else observation.value

    def add(self, row: CaseRow | None, base: CaseRow | None) -> None:
        value = None
        if row is not None and (self.matches is None or self.matches(row)):
            self.scoped += 1
            if row.trials > self.most_trials:
                self.most_trials = row.trials
            if self._keeps_rows:
                self.pinned_rows.append(row)
            if (row.missing or row.error) and self._skips_failed:  # failed to produce
                self.missing += 1
            else:
                observation = self._observe_row(row, self._grader)
                if observation.errored:
                    self.errored += 1
                elif observation.value is not None:
                    value = observation.value
                    self.values.add(value)
        if not self.paired:
            return
        _, base_value = self._observe(base)
        if base_value is None:
            return
        self.base_values.add(base_value)
        if value is None:
            return
        self.shared += 1
        if self.rule.strict:
            self.regressed += self.sign * (value - base_value) < 0
        elif self.spec.aggregate in (metrics.P50, metrics.P95):
            self.shared_candidate.append(value)
            self.shared_baseline.append(base_value)
        else:  # flip "lower is better" metrics before pairing
            self.shared_candidate.append(self.sign * value)
            self.shared_baseline.append(self.sign * base_value)

    def result(self, missing_tolerance: float, pinned_not_run: Sequence[CaseRow], has_baseline: bool) -> dict:
        rule, spec, direction = self.rule, self.spec, self.direction
        value, interval = _aggregate(spec, self.values)
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
            "n": self.values.n,
            "missing": self.missing,
            "errored": self.errored,
            "note": "",
        }

        def decide(outcome: str, note: str = "") -> dict[str, Any]:
            result["outcome"] = outcome
            result["note"] = note
            return result

        if rule.blocked_reason:
            return decide(Outcome.UNDECIDED, rule.blocked_reason)
        if spec.needs_trials and self.scoped and self.most_trials < 2:
            return decide(
                Outcome.UNDECIDED,
                f"{rule.metric} needs repeated trials and the run has one trial per case: run the "
                "check with trials (2 or more), or submit outputs with a trial number",
            )
        if spec.aggregate == metrics.ALL:
            not_run = [row for row in pinned_not_run if in_scope(row, rule.scope)]
            return _decide_pinned(self.pinned_rows, not_run, result, decide)
        lacking = self.missing + self.errored
        if self.scoped and lacking / self.scoped > missing_tolerance:
            return decide(
                Outcome.UNDECIDED,
                f"{self.missing} missing and {self.errored} errored of {self.scoped} cases in scope "
                f"(tolerance {missing_tolerance:.0%})",
            )
        if value is None:
            return decide(Outcome.UNDECIDED, "no measurable cases in scope")
        if rule.mode == RuleMode.NO_REGRESSION:
            return self._decide_regression(has_baseline, result, decide)

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

    def _decide_regression(self, has_baseline: bool, result: dict[str, Any], decide: Any) -> dict[str, Any]:
        """Paired comparison with the baseline on the cases both runs measured."""
        rule, spec = self.rule, self.spec
        if not has_baseline:
            return decide(Outcome.PASS, "no baseline yet: nothing to regress from")
        result["baseline"], _ = _aggregate(spec, self.base_values)
        if not self.shared:
            return decide(Outcome.UNDECIDED, "no cases measured by both candidate and baseline")
        if rule.strict:
            note = f"{self.regressed} case(s) got worse than the baseline" if self.regressed else ""
            return decide(Outcome.FAIL if self.regressed else Outcome.PASS, note)
        if spec.aggregate in (metrics.P50, metrics.P95):
            # Percentiles do not pair case by case: compare the aggregates within the margin.
            q = 50 if spec.aggregate == metrics.P50 else 95
            candidate = percentile(self.shared_candidate, q)
            baseline = percentile(self.shared_baseline, q)
            ok = self.sign * (candidate - baseline) >= -rule.margin
            return decide(Outcome.PASS if ok else Outcome.FAIL)
        average, interval = paired_difference_interval(self.shared_candidate, self.shared_baseline)
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


def evaluate_rule(
    rule: RuleSpec,
    rows: Iterable[CaseRow],
    baseline_rows: Iterable[CaseRow] | None,
    missing_tolerance: float,
    pinned_not_run: Sequence[CaseRow] = (),
) -> dict[str, Any]:
    """One line of the rule table (the API's ``rules`` item, plus notes).

    ``pinned_not_run`` are the dataset's pinned cases the run did not include (not active):
    the pinned rule cannot pass while one of them is in its scope.
    """
    return evaluate([rule], rows, baseline_rows, missing_tolerance, pinned_not_run).rules[0]


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
    rows: Iterable[CaseRow],
    baseline_rows: Iterable[CaseRow] | None,
    missing_tolerance: float = 0.0,
    pinned_not_run: Sequence[CaseRow] = (),
) -> Evaluation:
    """The whole rule table, its verdict and the trace deltas, in one pass over both runs' rows
    (in case id order, as iter_case_rows streams them; lists are sorted first)."""
    has_baseline = baseline_rows is not None
    states = [_RuleState(rule, has_baseline) for rule in rules]
    deltas = TraceDeltas() if has_baseline else None
    for row, base in pair_by_case(rows, baseline_rows):
        for state in states:
            state.add(row, base)
        if deltas is not None:
            deltas.add(row, base)
    results = [state.result(missing_tolerance, pinned_not_run, has_baseline) for state in states]
    return Evaluation(
        verdict=verdict_for(results), rules=results, trace_deltas=deltas.result() if deltas else {}
    )
