"""Unit tests of pure rule evaluation (DESIGN.md sections 5 and 8): rows in, verdict out."""

import pytest

from gates_app.evaluation import RuleSpec, evaluate, evaluate_rule, in_scope
from gates_app.metrics import get_metric, metric_keys
from gates_app.trace_deltas import trace_deltas
from grading_app.results import CaseRow, GradeRow


def row(
    case_id,
    passed=True,
    *,
    grader="exact",
    score=None,
    tier="trusted",
    failure_class="factual",
    risk="normal",
    tags=(),
    pinned=False,
    missing=False,
    error="",
    grade_error="",
    **signals,
):
    """A case row with one grade from ``grader`` (none when passed is None and no error)."""
    grades = {}
    if passed is not None or grade_error:
        grades[grader] = GradeRow(
            score=(1.0 if passed else 0.0) if score is None and passed is not None else score,
            passed=passed,
            error=grade_error,
        )
    return CaseRow(
        case_id=case_id,
        key=f"case-{case_id}",
        tier=tier,
        failure_class=failure_class,
        risk=risk,
        tags=list(tags),
        pinned=pinned,
        missing=missing,
        error=error,
        grades={} if missing or error else grades,
        **signals,
    )


def rows(passes, fails, start=1, **kwargs):
    """``passes`` passing rows then ``fails`` failing rows, with consecutive case ids."""
    outcomes = [True] * passes + [False] * fails
    return [row(start + i, ok, **kwargs) for i, ok in enumerate(outcomes)]


def rule(name="accuracy", metric="pass_rate", **kwargs):
    if metric in ("pass_rate", "mean_score"):
        kwargs.setdefault("grader", "exact")
    return RuleSpec(name=name, metric=metric, **kwargs)


# Metric registry


def test_every_metric_of_the_design_is_registered():
    assert set(metric_keys()) == {
        "pass_rate", "mean_score", "pinned_pass", "error_rate", "latency_p50_ms",
        "latency_p95_ms", "ttft_p95_ms", "cost_per_case_usd", "tokens_per_case",
        "refusal_rate", "escalation_rate", "tool_calls_mean", "trace_steps_mean", "retry_rate",
        # issue 14: repeated trials
        "pass_hat_k", "pass_at_k", "consistency",
    }  # fmt: skip


def test_success_rates_are_minimums_and_costs_are_maximums():
    assert get_metric("pass_rate").direction == "min"
    assert get_metric("pinned_pass").direction == "min"
    for key in ("error_rate", "latency_p95_ms", "cost_per_case_usd", "refusal_rate"):
        assert get_metric(key).direction == "max"


def test_unknown_metric_is_a_key_error_naming_it():
    with pytest.raises(KeyError, match="no_such_metric"):
        get_metric("no_such_metric")


# Absolute rules


def test_absolute_pass_rate_above_threshold_passes():
    result = evaluate_rule(rule(threshold=0.8), rows(9, 1), None, 0.0)
    assert result["outcome"] == "pass"
    assert result["value"] == 0.9
    assert result["n"] == 10
    low, high = result["interval"]
    assert low < 0.9 < high  # Wilson interval reported alongside the point value


def test_absolute_pass_rate_below_threshold_fails_and_verdict_is_fail():
    evaluation = evaluate([rule(threshold=0.9)], rows(8, 2), None)
    assert evaluation.rules[0]["outcome"] == "fail"
    assert evaluation.rules[0]["value"] == 0.8
    assert evaluation.verdict == "fail"


def test_pass_rate_exactly_at_threshold_passes():
    assert evaluate_rule(rule(threshold=0.8), rows(8, 2), None, 0.0)["outcome"] == "pass"


def test_cases_without_a_grade_from_the_grader_do_not_count():
    cases = [*rows(4, 0), row(5, passed=None), row(6, False, grader="other")]
    result = evaluate_rule(rule(threshold=1.0), cases, None, 0.0)
    assert result["outcome"] == "pass"
    assert result["n"] == 4


def test_mean_score_rule_uses_grader_scores():
    cases = [row(1, True, score=1.0), row(2, True, score=0.5), row(3, False, score=0.0)]
    result = evaluate_rule(rule(metric="mean_score", threshold=0.5), cases, None, 0.0)
    assert result["value"] == 0.5
    assert result["outcome"] == "pass"
    assert evaluate_rule(rule(metric="mean_score", threshold=0.51), cases, None, 0.0)["outcome"] == "fail"


def test_direction_override_turns_a_minimum_into_a_maximum():
    result = evaluate_rule(rule(threshold=0.5, direction="max"), rows(9, 1), None, 0.0)
    assert result["direction"] == "max"
    assert result["outcome"] == "fail"


def test_failing_latency_warn_rule_gives_verdict_warn():
    latencies = [100.0 * i for i in range(1, 11)]  # p95: 900 + 100 * 0.55 = 955
    cases = [row(i, True, latency_ms=ms) for i, ms in enumerate(latencies, start=1)]
    evaluation = evaluate(
        [
            rule(threshold=0.9),
            rule("latency budget", metric="latency_p95_ms", threshold=500, severity="warn"),
        ],
        cases,
        None,
    )
    latency = evaluation.rules[1]
    assert latency["value"] == pytest.approx(955.0)
    assert latency["outcome"] == "fail"
    assert evaluation.rules[0]["outcome"] == "pass"
    assert evaluation.verdict == "warn"


def test_latency_within_budget_passes_and_verdict_is_pass():
    cases = [row(i, True, latency_ms=100.0 * i) for i in range(1, 11)]
    evaluation = evaluate(
        [rule(threshold=0.9), rule("latency", metric="latency_p95_ms", threshold=1000, severity="warn")],
        cases,
        None,
    )
    assert evaluation.verdict == "pass"


def test_failed_block_rule_fails_even_when_another_block_rule_is_undecided():
    cases = rows(0, 5)
    for case in cases:
        case.grades["judge"] = GradeRow(score=None, passed=None, error="judge timed out")
    evaluation = evaluate(
        [rule("accuracy", threshold=0.9), rule("judged", grader="judge", threshold=0.5)],
        cases,
        None,
    )
    assert [r["outcome"] for r in evaluation.rules] == ["fail", "undecided"]
    assert evaluation.verdict == "fail"


def test_undecided_block_rule_makes_the_verdict_inconclusive_over_a_failed_warn_rule():
    cases = [*rows(5, 0), row(6, missing=True)]
    evaluation = evaluate([rule(threshold=0.9), rule("soft", threshold=1.1, severity="warn")], cases, None)
    assert evaluation.rules[0]["outcome"] == "undecided"
    assert evaluation.verdict == "inconclusive"


# Missing data and tolerance


def test_missing_trusted_outputs_make_block_rule_undecided():
    cases = [*rows(8, 0), row(9, missing=True), row(10, error="timeout")]
    evaluation = evaluate([rule(threshold=0.5)], cases, None, missing_tolerance=0.1)
    result = evaluation.rules[0]
    assert result["outcome"] == "undecided"
    assert result["missing"] == 2
    assert "2 missing" in result["note"]
    assert evaluation.verdict == "inconclusive"


def test_missing_outputs_within_tolerance_let_the_rule_decide():
    cases = [*rows(8, 0), row(9, missing=True), row(10, error="timeout")]
    result = evaluate_rule(rule(threshold=0.9), cases, None, 0.2)
    assert result["outcome"] == "pass"
    assert result["missing"] == 2
    assert result["n"] == 8


def test_any_missing_output_is_undecided_with_the_default_zero_tolerance():
    cases = [*rows(99, 0), row(100, missing=True)]
    assert evaluate([rule(threshold=0.5)], cases, None).verdict == "inconclusive"


def test_grader_errors_count_as_lacking():
    cases = [*rows(8, 0), row(9, None, grade_error="judge timed out")]
    result = evaluate_rule(rule(threshold=0.5), cases, None, 0.0)
    assert result["outcome"] == "undecided"
    assert result["errored"] == 1
    assert result["missing"] == 0
    assert "1 errored" in result["note"]
    assert evaluate_rule(rule(threshold=0.5), cases, None, 0.2)["outcome"] == "pass"


def test_rule_with_no_measurable_cases_is_undecided_not_passed():
    cases = [row(1, passed=None), row(2, passed=None)]
    result = evaluate_rule(rule(threshold=0.5), cases, None, 0.0)
    assert result["outcome"] == "undecided"
    assert result["value"] is None


def test_blocked_rule_is_undecided_with_its_reason():
    blocked = rule(threshold=0.5, blocked_reason="rubric version 2 is not approved")
    evaluation = evaluate([blocked], rows(10, 0), None)
    assert evaluation.rules[0]["outcome"] == "undecided"
    assert evaluation.rules[0]["note"] == "rubric version 2 is not approved"
    assert evaluation.verdict == "inconclusive"


# decide_on: interval


def test_interval_rule_passes_when_the_whole_interval_clears_the_threshold():
    # 100/100: Wilson lower bound 0.963 >= 0.9
    result = evaluate_rule(rule(threshold=0.9, decide_on="interval"), rows(100, 0), None, 0.0)
    assert result["outcome"] == "pass"


def test_interval_rule_fails_when_the_whole_interval_misses_the_threshold():
    # 2/20: Wilson upper bound 0.301 < 0.5
    result = evaluate_rule(rule(threshold=0.5, decide_on="interval"), rows(2, 18), None, 0.0)
    assert result["outcome"] == "fail"


def test_interval_rule_is_undecided_when_the_interval_straddles_the_threshold():
    # 9/10 = 0.9 clears 0.8 on the point value, but the interval is (0.596, 0.982)
    assert evaluate_rule(rule(threshold=0.8), rows(9, 1), None, 0.0)["outcome"] == "pass"
    result = evaluate_rule(rule(threshold=0.8, decide_on="interval"), rows(9, 1), None, 0.0)
    assert result["outcome"] == "undecided"
    assert "straddles" in result["note"]


def test_interval_rule_on_a_maximum_metric_uses_the_upper_bound_to_pass():
    refused = [row(i, True, refused=i <= 2) for i in range(1, 101)]  # 2% refusal, n = 100
    passing = rule("refusals", metric="refusal_rate", threshold=0.1, decide_on="interval")
    assert evaluate_rule(passing, refused, None, 0.0)["outcome"] == "pass"  # upper 0.070
    straddling = rule("refusals", metric="refusal_rate", threshold=0.05, decide_on="interval")
    assert evaluate_rule(straddling, refused, None, 0.0)["outcome"] == "undecided"


# no_regression


def test_no_regression_without_baseline_passes_and_says_so():
    result = evaluate_rule(rule(mode="no_regression"), rows(0, 10), None, 0.0)
    assert result["outcome"] == "pass"
    assert "no baseline" in result["note"]


def test_strict_no_regression_fails_on_one_regressed_case():
    baseline = rows(10, 0)
    candidate = [*rows(9, 0), row(10, False)]
    result = evaluate_rule(rule(mode="no_regression", strict=True), candidate, baseline, 0.0)
    assert result["outcome"] == "fail"
    assert "1 case(s)" in result["note"]
    assert result["baseline"] == 1.0
    assert result["value"] == 0.9


def test_strict_no_regression_passes_when_no_case_got_worse():
    baseline = [*rows(8, 0), row(9, False), row(10, False)]
    candidate = [*rows(9, 0), row(10, False)]
    result = evaluate_rule(rule(mode="no_regression", strict=True), candidate, baseline, 0.0)
    assert result["outcome"] == "pass"


def test_strict_no_regression_pairs_cases_by_id_not_by_rate():
    # Same pass rate on both runs, but case 1 went from pass to fail.
    baseline = [row(1, True), row(2, False), *rows(8, 0, start=3)]
    candidate = [row(1, False), row(2, True), *rows(8, 0, start=3)]
    result = evaluate_rule(rule(mode="no_regression", strict=True), candidate, baseline, 0.0)
    assert result["value"] == result["baseline"]
    assert result["outcome"] == "fail"


def test_paired_no_regression_passes_on_clear_improvement():
    baseline = rows(10, 10)
    candidate = rows(20, 0)  # cases 11-20 fixed: mean diff 0.5, interval (0.275, 0.725)
    result = evaluate_rule(rule(mode="no_regression", margin=0.0), candidate, baseline, 0.0)
    assert result["outcome"] == "pass"
    assert result["baseline"] == 0.5
    assert result["interval"][0] == pytest.approx(0.2752, abs=1e-4)


def test_paired_no_regression_fails_on_clear_regression():
    baseline = rows(20, 0)
    candidate = rows(10, 10)  # cases 11-20 broke: interval (-0.725, -0.275) below -margin
    result = evaluate_rule(rule(mode="no_regression", margin=0.05), candidate, baseline, 0.0)
    assert result["outcome"] == "fail"
    assert result["interval"][1] == pytest.approx(-0.2752, abs=1e-4)


def test_paired_no_regression_is_undecided_when_the_interval_straddles_the_margin():
    baseline = [row(1, True), row(2, False), *rows(18, 0, start=3)]
    candidate = [row(1, False), row(2, True), *rows(18, 0, start=3)]
    result = evaluate_rule(rule(mode="no_regression"), candidate, baseline, 0.0)
    assert result["outcome"] == "undecided"
    assert "straddles" in result["note"]


def test_paired_no_regression_with_identical_results_passes():
    result = evaluate_rule(rule(mode="no_regression"), rows(7, 3), rows(7, 3), 0.0)
    assert result["outcome"] == "pass"


def test_paired_no_regression_only_compares_cases_both_runs_measured():
    baseline = rows(10, 0, start=101)  # disjoint case ids
    result = evaluate_rule(rule(mode="no_regression"), rows(10, 0), baseline, 0.0)
    assert result["outcome"] == "undecided"


def test_no_regression_on_a_maximum_metric_treats_an_increase_as_worse():
    baseline = [row(i, True, cost_usd=0.01) for i in range(1, 21)]
    candidate = [row(i, True, cost_usd=0.02) for i in range(1, 21)]
    cost = rule("cost", metric="cost_per_case_usd", mode="no_regression", margin=0.001)
    assert evaluate_rule(cost, candidate, baseline, 0.0)["outcome"] == "fail"
    assert evaluate_rule(cost, baseline, candidate, 0.0)["outcome"] == "pass"


# Scope


def test_scope_by_tier_ignores_monitoring_cases():
    cases = [*rows(5, 0), *rows(0, 5, start=6, tier="monitoring")]
    result = evaluate_rule(rule(threshold=1.0, scope={"tier": "trusted"}), cases, None, 0.0)
    assert result["outcome"] == "pass"
    assert result["n"] == 5
    assert evaluate_rule(rule(threshold=1.0), cases, None, 0.0)["outcome"] == "fail"


def test_scope_by_failure_class_risk_and_tags():
    high = row(1, False, failure_class="safety", risk="high", tags=["refunds"])
    low = row(2, True, failure_class="factual", risk="low", tags=["billing", "refunds"])
    assert in_scope(high, {"failure_class": "safety"})
    assert not in_scope(low, {"failure_class": "safety"})
    assert in_scope(high, {"risk": "high"})
    assert not in_scope(low, {"risk": "high"})
    assert in_scope(low, {"tags": ["billing"]})
    assert not in_scope(high, {"tags": ["billing"]})
    assert in_scope(high, {"tags": ["billing", "refunds"]})  # any of the tags


def test_scope_needs_every_key_to_match():
    case = row(1, True, tier="trusted", risk="low")
    assert in_scope(case, {"tier": "trusted"})
    assert not in_scope(case, {"tier": "trusted", "risk": "high"})


def test_scope_accepts_a_list_of_values():
    case = row(1, True, risk="normal")
    assert in_scope(case, {"risk": ["high", "normal"]})
    assert not in_scope(case, {"risk": ["high", "low"]})


def test_empty_scope_takes_every_case():
    assert in_scope(row(1, True, tier="monitoring"), {})


def test_scoped_rule_counts_missing_cases_only_within_its_scope():
    cases = [*rows(5, 0, risk="high"), row(6, missing=True, risk="low")]
    result = evaluate_rule(rule(threshold=1.0, scope={"risk": "high"}), cases, None, 0.0)
    assert result["outcome"] == "pass"
    assert result["missing"] == 0


def test_scoped_rule_on_failure_class_fails_on_its_own_failures():
    cases = [*rows(9, 0), row(10, False, failure_class="safety")]
    result = evaluate_rule(rule(threshold=1.0, scope={"failure_class": "safety"}), cases, None, 0)
    assert result["outcome"] == "fail"
    assert result["n"] == 1


# pinned_pass


def test_pinned_pass_without_pinned_cases_passes():
    result = evaluate_rule(rule("pinned", metric="pinned_pass"), rows(3, 3), None, 0.0)
    assert result["outcome"] == "pass"
    assert result["n"] == 0


def test_pinned_pass_fails_on_one_failing_pinned_case():
    cases = [*rows(5, 3), row(9, True, pinned=True), row(10, False, pinned=True)]
    evaluation = evaluate([rule("pinned", metric="pinned_pass")], cases, None)
    assert evaluation.rules[0]["outcome"] == "fail"
    assert evaluation.rules[0]["n"] == 2
    assert evaluation.verdict == "fail"


def test_pinned_pass_needs_every_grader_of_the_pinned_case():
    case = row(1, True, pinned=True)
    case.grades["safety"] = GradeRow(score=0.0, passed=False)
    result = evaluate_rule(rule("pinned", metric="pinned_pass"), [case], None, 0.0)
    assert result["outcome"] == "fail"


def test_pinned_pass_passes_when_all_pinned_cases_pass():
    cases = [*rows(0, 5), *rows(2, 0, start=6, pinned=True)]
    result = evaluate_rule(rule("pinned", metric="pinned_pass"), cases, None, 0.0)
    assert result["outcome"] == "pass"
    assert result["threshold"] == 1.0


def test_pinned_pass_is_not_passed_when_the_only_pinned_case_is_missing():
    # Within tolerance (1 of 10 lacking), but the one pinned case produced nothing:
    # "missing data is never a pass" (DESIGN.md section 5).
    cases = [*rows(9, 0), row(10, missing=True, pinned=True)]
    result = evaluate_rule(rule("pinned", metric="pinned_pass"), cases, None, 0.1)
    assert result["outcome"] != "pass", result["note"]


# Inspect rules


def test_inspect_rules_never_change_the_verdict():
    cases = [*rows(5, 5), row(11, missing=True)]
    inspect_fail = rule("watch", threshold=0.99, severity="inspect", scope={"tier": "trusted"})
    evaluation = evaluate([inspect_fail], rows(5, 5), None)
    assert evaluation.rules[0]["outcome"] == "fail"
    assert evaluation.verdict == "pass"
    evaluation = evaluate([inspect_fail], cases, None)
    assert evaluation.rules[0]["outcome"] == "undecided"
    assert evaluation.verdict == "pass"


def test_inspect_rule_does_not_hide_a_failed_warn_rule():
    evaluation = evaluate(
        [rule("watch", threshold=0.0, severity="inspect"), rule("soft", threshold=0.99, severity="warn")],
        rows(5, 5),
        None,
    )
    assert evaluation.verdict == "warn"


def test_undecided_warn_rule_gives_warn_not_pass():
    evaluation = evaluate([rule(threshold=0.5, severity="warn")], [row(1, missing=True)], None)
    assert evaluation.rules[0]["outcome"] == "undecided"
    assert evaluation.verdict == "warn"


def test_no_rules_passes():
    assert evaluate([], rows(1, 1), None).verdict == "pass"


# error_rate


def test_error_rate_counts_missing_and_errored_cases():
    cases = [*rows(7, 0), row(8, missing=True), row(9, missing=True), row(10, error="500")]
    result = evaluate_rule(rule("errors", metric="error_rate", threshold=0.2), cases, None, 0.0)
    assert result["value"] == pytest.approx(0.3)
    assert result["n"] == 10
    assert result["missing"] == 0  # the failures are the measurement, not lacking data
    assert result["outcome"] == "fail"


def test_error_rate_within_its_maximum_passes_despite_zero_tolerance():
    cases = [*rows(9, 0), row(10, missing=True)]
    result = evaluate_rule(rule("errors", metric="error_rate", threshold=0.1), cases, None, 0.0)
    assert result["outcome"] == "pass"


# trace_deltas


def test_trace_deltas_without_baseline_are_empty():
    assert trace_deltas([row(1, True, tool_calls=3)], None) == {}


def test_trace_deltas_per_failure_class_against_the_baseline():
    candidate = [
        row(1, True, tool_calls=4, trace_steps=6, retries=1, refused=False),
        row(2, True, tool_calls=2, trace_steps=4, retries=0, refused=True),
        row(3, True, failure_class="safety", tool_calls=1, refused=True),
        row(4, missing=True, tool_calls=50),  # produced nothing: left out of the means
    ]
    baseline = [
        row(1, True, tool_calls=1, trace_steps=2, retries=0, refused=False),
        row(2, True, tool_calls=1, trace_steps=2, retries=0, refused=False),
        row(3, True, failure_class="safety", tool_calls=1, refused=None),
    ]
    deltas = trace_deltas(candidate, baseline)
    assert sorted(deltas) == ["factual", "safety"]
    factual = deltas["factual"]
    assert factual["tool_calls_mean"] == {"candidate": 3.0, "baseline": 1.0, "delta": 2.0}
    assert factual["trace_steps_mean"]["delta"] == 3.0
    assert factual["retry_rate"] == {"candidate": 0.5, "baseline": 0.0, "delta": 0.5}
    assert factual["refusal_rate"]["delta"] == 0.5
    safety = deltas["safety"]
    assert safety["tool_calls_mean"]["delta"] == 0.0
    # refused unknown on the baseline: no rate there, so no delta
    assert safety["refusal_rate"] == {"candidate": 1.0, "baseline": None, "delta": None}


def test_trace_deltas_for_a_class_only_in_the_candidate_have_no_delta():
    deltas = trace_deltas([row(1, True, failure_class="new", tool_calls=2)], [])
    assert deltas["new"]["tool_calls_mean"] == {"candidate": 2.0, "baseline": None, "delta": None}


# which baseline grades a verdict reads


def test_the_baseline_is_read_for_the_graders_its_paired_rules_compare():
    from gates_app.services import baseline_graders

    absolute = rule(threshold=0.9)
    paired = rule("no regression", mode="no_regression", grader="judge")
    latency = rule("latency", metric="latency_p95_ms", mode="no_regression")
    assert baseline_graders([absolute]) == set()  # nothing compared: no grade read
    assert baseline_graders([absolute, paired, latency]) == {"judge"}
    # pinned_pass reads every grade of a case
    assert baseline_graders([paired, rule("pins", metric="pinned_pass", mode="no_regression")]) is None
