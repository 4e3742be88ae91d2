"""Each rule metric of the registry computes its value from hand-built case rows (DESIGN.md section 8).

tests/gates/test_evaluation.py decides rules on some of these metrics; this file pins the value
every one of them computes, so a metric that reads the wrong field or aggregates the wrong way fails.
"""

from typing import Any

import pytest

from gates_app.evaluation import RuleSpec, evaluate_rule
from gates_app.metrics import get_metric, metric_keys
from grading_app.results import CaseRow, GradeRow


def case(case_id: int, *, grade: GradeRow | None = None, **fields: Any) -> CaseRow:
    values: dict[str, Any] = {
        "key": f"case-{case_id}",
        "tier": "trusted",
        "failure_class": "factual",
        "risk": "normal",
        "tags": [],
        "pinned": False,
        "missing": False,
        "error": "",
    }
    values.update(fields)
    return CaseRow(case_id=case_id, grades={"exact": grade} if grade else {}, **values)


def passed(ok: bool, score: float | None = None) -> GradeRow:
    return GradeRow(score=score if score is not None else float(ok), passed=ok)


def trials(passed_n: int, of: int = 3) -> GradeRow:
    """A grader's grades of a case's ``of`` trials, ``passed_n`` of which passed (as merged)."""
    return GradeRow(score=passed_n / of, passed=passed_n == of, passed_n=passed_n, of=of)


# metric -> (rows, expected value, expected n), each worked out by hand in the comment.
CASES: dict[str, tuple[list[CaseRow], float, int]] = {
    # 3 of 4 graded cases passed; the ungraded case does not count: 3 / 4
    "pass_rate": (
        [
            case(1, grade=passed(True)),
            case(2, grade=passed(True)),
            case(3, grade=passed(False)),
            case(4, grade=passed(True)),
            case(5),
        ],
        0.75,
        4,
    ),
    # (1.0 + 0.5 + 0.0 + 0.5) / 4
    "mean_score": (
        [case(i, grade=passed(s >= 0.5, s)) for i, s in enumerate([1.0, 0.5, 0.0, 0.5], start=1)],
        0.5,
        4,
    ),
    # pinned cases 1 and 2 pass, pinned case 3 fails: not all pass -> 0; unpinned case 4 ignored
    "pinned_pass": (
        [
            case(1, pinned=True, grade=passed(True)),
            case(2, pinned=True, grade=passed(True)),
            case(3, pinned=True, grade=passed(False)),
            case(4, grade=passed(False)),
        ],
        0.0,
        3,
    ),
    # one missing and one errored of 4: 2 / 4
    "error_rate": (
        [case(1), case(2, missing=True), case(3, error="Timeout"), case(4)],
        0.5,
        4,
    ),
    # sorted 100, 200, 300, 400; rank (4 - 1) * 0.5 = 1.5 -> 200 + 0.5 * 100
    "latency_p50_ms": (
        [case(i, latency_ms=v) for i, v in enumerate([400.0, 100.0, 300.0, 200.0], start=1)],
        250.0,
        4,
    ),
    # sorted 100 .. 500; rank (5 - 1) * 0.95 = 3.8 -> 400 + 0.8 * 100
    "latency_p95_ms": (
        [case(i, latency_ms=v) for i, v in enumerate([500.0, 100.0, 400.0, 200.0, 300.0], start=1)],
        480.0,
        5,
    ),
    # sorted 10 .. 50 (the case without a ttft does not count); rank 3.8 -> 40 + 0.8 * 10
    "ttft_p95_ms": (
        [case(i, ttft_ms=v) for i, v in enumerate([10.0, 20.0, 30.0, 40.0, 50.0], start=1)]
        + [case(6, ttft_ms=None)],
        48.0,
        5,
    ),
    # (0.01 + 0.02 + 0.03) / 3; the case without a cost does not count
    "cost_per_case_usd": (
        [case(1, cost_usd=0.01), case(2, cost_usd=0.02), case(3, cost_usd=0.03), case(4)],
        0.02,
        3,
    ),
    # (100 + 20) and (50 + unknown = 50); no tokens at all does not count: (120 + 50) / 2
    "tokens_per_case": (
        [
            case(1, input_tokens=100, output_tokens=20),
            case(2, input_tokens=50),
            case(3),
        ],
        85.0,
        2,
    ),
    # refused 2 of the 3 cases that say; unknown does not count: 2 / 3
    "refusal_rate": (
        [case(1, refused=True), case(2, refused=False), case(3, refused=None), case(4, refused=True)],
        2 / 3,
        3,
    ),
    # escalated 1 of 4: 1 / 4
    "escalation_rate": (
        [
            case(1, escalated=True),
            case(2, escalated=False),
            case(3, escalated=False),
            case(4, escalated=False),
        ],
        0.25,
        4,
    ),
    # retried at all (retries > 0) in 2 of 4, however many times: 2 / 4
    "retry_rate": (
        [case(1, retries=0), case(2, retries=2), case(3, retries=0), case(4, retries=1)],
        0.5,
        4,
    ),
    # (0 + 1 + 2 + 5) / 4
    "tool_calls_mean": (
        [case(i, tool_calls=v) for i, v in enumerate([0, 1, 2, 5], start=1)],
        2.0,
        4,
    ),
    # Three trials per case: cases 1 (3 of 3 passed), 2 (2 of 3), 3 (0 of 3); every trial of
    # only case 1 passed: 1 / 3
    "pass_hat_k": (
        [
            case(1, trials=3, grade=trials(3)),
            case(2, trials=3, grade=trials(2)),
            case(3, trials=3, grade=trials(0)),
        ],
        1 / 3,
        3,
    ),
    # the same cases: some trial passed in cases 1 and 2: 2 / 3
    "pass_at_k": (
        [
            case(1, trials=3, grade=trials(3)),
            case(2, trials=3, grade=trials(2)),
            case(3, trials=3, grade=trials(0)),
        ],
        2 / 3,
        3,
    ),
    # agreement with each case's most common outcome: 3/3, 2/3, 3/3 -> (1 + 2/3 + 1) / 3 = 8/9
    "consistency": (
        [
            case(1, trials=3, grade=trials(3)),
            case(2, trials=3, grade=trials(2)),
            case(3, trials=3, grade=trials(0)),
        ],
        8 / 9,
        3,
    ),
    # (3 + 4 + 5) / 3
    "trace_steps_mean": (
        [case(i, trace_steps=v) for i, v in enumerate([3, 4, 5], start=1)],
        4.0,
        3,
    ),
}


def test_every_registered_metric_has_a_hand_computed_case():
    assert sorted(CASES) == metric_keys()


@pytest.mark.parametrize(
    ("metric", "rows", "value", "n"), [(k, *v) for k, v in CASES.items()], ids=list(CASES)
)
def test_metric_computes_its_value_from_case_rows(metric, rows, value, n):
    grader = "exact" if get_metric(metric).needs_grader else None
    rule = RuleSpec(name=metric, metric=metric, grader=grader, threshold=0.0, direction="min")

    result = evaluate_rule(rule, rows, None, 0.0)

    assert result["value"] == pytest.approx(value)
    assert result["n"] == n
    assert result["outcome"] != "undecided"  # measured and decided, nothing counted as lacking


@pytest.mark.parametrize("metric", ["pass_hat_k", "pass_at_k", "consistency"])
def test_trial_metrics_are_undecided_on_a_run_of_single_trials(metric):
    # One trial per case cannot show flakiness: pass^k would just be the pass rate, passed off
    # as something stronger. The rule says why instead of deciding.
    rows = [case(1, grade=passed(True)), case(2, grade=passed(True))]
    rule = RuleSpec(name=metric, metric=metric, grader="exact", threshold=0.5)
    result = evaluate_rule(rule, rows, None, 0.0)
    assert result["outcome"] == "undecided"
    assert "needs repeated trials" in result["note"]


def test_the_pass_rate_of_repeated_trials_is_the_mean_share_per_case():
    # Case 1 passed 3 of 3 trials, case 2 passed 1 of 3: (1 + 1/3) / 2 = 2/3, n = 2 cases.
    rows = [case(1, trials=3, grade=trials(3)), case(2, trials=3, grade=trials(1))]
    rule = RuleSpec(name="r", metric="pass_rate", grader="exact", threshold=0.5)
    result = evaluate_rule(rule, rows, None, 0.0)
    assert result["value"] == pytest.approx(2 / 3) and result["n"] == 2


def test_a_case_with_an_errored_trial_is_errored_for_pass_hat_k():
    errored = GradeRow(score=1.0, passed=True, error="judge timed out", passed_n=2, of=2)
    rows = [case(1, trials=3, grade=trials(3)), case(2, trials=3, grade=errored)]
    rule = RuleSpec(name="r", metric="pass_hat_k", grader="exact", threshold=0.5)
    result = evaluate_rule(rule, rows, None, missing_tolerance=0.0)
    assert result["errored"] == 1 and result["outcome"] == "undecided"
