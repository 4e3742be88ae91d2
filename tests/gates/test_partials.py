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


# Through the job path: chunks fold themselves into parts; the finaliser merges them.


@pytest.fixture
def graded_chunks(db, django_capture_on_commit_callbacks, settings):
    """A check whose run's chunks ran (each folded into a part) but whose finaliser has not."""
    from gates_app.services import request_check
    from tests.factories import make_scenario, outputs_for

    settings.EVALGATE_CHUNK_SIZE = 2  # 6 cases: three chunks
    s = make_scenario(n_trusted=4, n_monitoring=2)
    outputs = outputs_for(s["cases"])
    outputs[1]["output"] = "Yes"
    with django_capture_on_commit_callbacks() as jobs:
        check, _ = request_check(gate=s["gate"], candidate="v1", outputs=outputs)
    for job in jobs:  # the chunks; the finaliser the last one enqueues is left waiting
        job()
    check.refresh_from_db()
    return s, check


def test_each_chunk_folds_a_part_and_the_finaliser_merges_them_without_reading_the_run(
    graded_chunks, monkeypatch
):
    from gates_app import services
    from gates_app.models import CheckPart
    from grading_app.jobs import finalise_run
    from grading_app.results import iter_case_rows

    s, check = graded_chunks
    assert check.status != "done"
    assert sorted(CheckPart.objects.filter(gate_check=check).values_list("chunk_index", flat=True)) == [
        0,
        1,
        2,
    ]
    # What one pass over the run decides, for comparison.
    expected = evaluate(services.rule_specs(s["gate"], check.run), list(iter_case_rows(check.run)), None, 0.0)

    def no_full_read(*args, **kwargs):
        raise AssertionError("the finaliser read the whole run although every chunk had a part")

    monkeypatch.setattr(services, "iter_case_rows", no_full_read)
    finalise_run(check.run_id)
    check.refresh_from_db()
    assert check.status == "done" and check.verdict == expected.verdict == "fail"
    assert check.rule_results == json.loads(json.dumps(expected.rules))
    assert not CheckPart.objects.filter(gate_check=check).exists()  # spent


def test_parts_folded_for_other_rules_are_not_used(graded_chunks):
    from gates_app import partials, services
    from gates_app.models import CheckPart
    from grading_app.jobs import finalise_run

    s, check = graded_chunks
    rule = s["gate"].rules.get(name="trusted accuracy")
    rule.threshold = 0.5  # the gate changed while the run was graded
    rule.save()
    specs = services.rule_specs(s["gate"], check.run)
    assert partials.merged(check, check.run, specs, None) is None
    finalise_run(check.run_id)  # reads the whole run instead
    check.refresh_from_db()
    accuracy = next(r for r in check.rule_results if r["name"] == "trusted accuracy")
    assert (accuracy["threshold"], accuracy["value"], accuracy["outcome"]) == (0.5, 0.75, "pass")
    assert not CheckPart.objects.filter(gate_check=check).exists()


def test_a_chunk_without_a_part_makes_the_finaliser_read_the_whole_run(graded_chunks):
    from gates_app import partials, services
    from gates_app.models import CheckPart

    s, check = graded_chunks
    CheckPart.objects.filter(gate_check=check, chunk_index=1).delete()  # its worker died after the commit
    assert partials.merged(check, check.run, services.rule_specs(s["gate"], check.run), None) is None


def test_a_failing_fold_never_fails_the_chunk(db, django_capture_on_commit_callbacks, monkeypatch, settings):
    from gates_app import partials
    from gates_app.services import request_check
    from tests.factories import make_scenario, outputs_for

    def broken(run, chunk):
        raise RuntimeError("fold broke")

    monkeypatch.setattr(partials.Folded, "dump", lambda self: broken(None, None))
    settings.EVALGATE_CHUNK_SIZE = 2
    s = make_scenario(n_trusted=4, n_monitoring=2)
    with django_capture_on_commit_callbacks(execute=True):
        check, _ = request_check(gate=s["gate"], candidate="v1", outputs=outputs_for(s["cases"]))
    check.refresh_from_db()
    assert check.status == "done" and check.verdict == "pass"  # decided from the whole run
    assert check.run.chunks.filter(status="done").count() == 3
