"""Partial verdicts: a run's rows folded chunk by chunk, each fold dumped to JSON and loaded
back, then merged, decide exactly what one pass over the whole run decides."""

import json
import random

import pytest

from gates_app.evaluation import Folded, RuleSpec, evaluate
from grading_app.results import CaseRow, GradeRow

RULES = [
    RuleSpec(name="accuracy", metric="pass_rate", grader="exact", scope={"tier": "trusted"}, threshold=0.7),
    RuleSpec(name="scores", metric="mean_score", grader="exact", threshold=0.5, decide_on="interval"),
    RuleSpec(name="regress", metric="pass_rate", grader="exact", mode="no_regression", margin=0.05),
    RuleSpec(name="strict", metric="pass_rate", grader="judge", mode="no_regression", strict=True),
    RuleSpec(name="latency", metric="latency_p95_ms", threshold=900, severity="warn"),
    RuleSpec(name="latency drift", metric="latency_p50_ms", mode="no_regression", margin=50),
    RuleSpec(name="errors", metric="error_rate", threshold=0.1),
    RuleSpec(name="pinned", metric="pinned_pass", scope={"risk": "high"}),
    RuleSpec(name="refusals", metric="refusal_rate", threshold=0.3, scope={"tags": ["billing"]}),
    RuleSpec(name="cost", metric="cost_per_case_usd", threshold=0.01, severity="warn"),
    RuleSpec(name="steady", metric="consistency", grader="exact", threshold=0.8),
]


def random_rows(rng: random.Random, case_ids: list[int], trials: int) -> list[CaseRow]:
    rows = []
    for case_id in case_ids:
        missing = rng.random() < 0.03
        error = "" if missing or rng.random() > 0.03 else "TimeoutError"
        row = CaseRow(
            case_id,
            f"k{case_id:05d}",
            rng.choice(["trusted", "monitoring"]),
            rng.choice(["refunds", "billing", "tools"]),
            rng.choice(["low", "normal", "high"]),
            rng.sample(["billing", "eu", "vip"], rng.randint(0, 2)),
            rng.random() < 0.1,
            missing,
            error,
            latency_ms=rng.uniform(100, 1500),
            cost_usd=rng.choice([None, rng.uniform(0, 0.02)]),
            tool_calls=rng.randint(0, 4),
            trace_steps=rng.randint(1, 9),
            retries=rng.choice([0, 0, 1]),
            refused=rng.choice([None, True, False]),
            tool_sequence=rng.choice([[], ["search"], ["search", "refund"]]),
            trials=trials,
        )
        if not missing and not error:
            for grader in ("exact", "judge"):
                if rng.random() < 0.05:
                    row.grades[grader] = GradeRow(None, None, "judge timed out")
                    continue
                passed_n = rng.randint(0, trials)
                score = passed_n / trials
                row.grades[grader] = GradeRow(
                    score, passed_n == trials, "", passed_n if trials > 1 else None, trials
                )
        rows.append(row)
    return rows


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("trials", [1, 3])
def test_folding_chunks_and_merging_their_json_decides_as_one_pass(seed, trials):
    rng = random.Random(seed)
    case_ids = sorted(rng.sample(range(1, 5000), 400))
    rows = random_rows(rng, case_ids, trials)
    # The baseline lacks some of the candidate's cases and has some of its own.
    baseline_ids = sorted(set(rng.sample(case_ids, 300)) | set(rng.sample(range(5000, 6000), 20)))
    baseline = random_rows(rng, baseline_ids, trials)
    whole = evaluate(RULES, rows, baseline, missing_tolerance=0.2)

    # Chunks of the candidate's cases, each paired with the baseline's rows of its cases; the
    # baseline's own cases are folded on their own, as the finaliser does.
    merged = Folded.start(RULES, True)
    for start in range(0, len(rows), 37):
        chunk = rows[start : start + 37]
        ids = {r.case_id for r in chunk}
        folded = Folded.start(RULES, True).add(chunk, [b for b in baseline if b.case_id in ids])
        merged.merge(Folded.load(RULES, True, json.loads(json.dumps(folded.dump()))))
    ours = {r.case_id for r in rows}
    merged.merge(Folded.start(RULES, True).add([], [b for b in baseline if b.case_id not in ours]))
    in_parts = merged.decide(missing_tolerance=0.2)

    assert in_parts.verdict == whole.verdict
    assert json.dumps(in_parts.trace_deltas, sort_keys=True) == json.dumps(whole.trace_deltas, sort_keys=True)
    for part, one in zip(in_parts.rules, whole.rules, strict=True):
        assert part.keys() == one.keys()
        for key, value in one.items():
            if isinstance(value, float) or (
                isinstance(value, list) and value and isinstance(value[0], float)
            ):
                assert part[key] == pytest.approx(value, rel=1e-12), (one["name"], key)
            else:
                assert part[key] == value, (one["name"], key)
