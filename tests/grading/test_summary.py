"""The run summary (grading_app.summary): every signal and grader figure, overall and by tier
and failure class, worked out by hand for six cases; and PostgreSQL's aggregation of it equal
to the stream's on random runs."""

import random

import pytest
from django.db import connection

from grading_app.models import CaseResult, Grade, Run
from grading_app.results import CaseRow, GradeRow, iter_case_rows
from grading_app.stats import wilson_interval
from grading_app.summary import summarise, summarise_run
from tests.factories import make_case, make_dataset, make_failure_class, make_grader

TIERS = ("trusted", "monitoring")

PASS, FAIL = GradeRow(1.0, True), GradeRow(0.0, False)


def row(case_id, tier, failure_class, missing=False, error="", **fields):
    return CaseRow(case_id, f"k{case_id}", tier, failure_class, "normal", [], False, missing, error, **fields)


ROWS = [
    row(1, "trusted", "factual", latency_ms=100, ttft_ms=10, cost_usd=0.01, refused=False,
        tool_calls=2, trace_steps=3, grades={"exact": PASS}),
    row(2, "trusted", "factual", latency_ms=300, ttft_ms=30, cost_usd=0.03, refused=True, retries=1,
        trace_steps=1, grades={"exact": FAIL}),
    row(3, "trusted", "safety", latency_ms=200, escalated=True, tool_calls=1, trace_steps=1,
        grades={"exact": PASS, "judge": GradeRow(None, None, "TimeoutError")}),
    row(4, "monitoring", "factual", missing=True),
    row(5, "monitoring", "safety", error="boom"),
    row(6, "monitoring", "safety", latency_ms=400, escalated=False,
        grades={"exact": PASS, "judge": GradeRow(0.5, True)}),
]  # fmt: skip


def test_signals_over_the_whole_run():
    # Produced: 1, 2, 3, 6. Latencies 100, 200, 300, 400: p50 250, p95 300 + 0.85 * 100.
    signals = summarise(iter(ROWS))["signals"]  # one pass: a stream will do
    assert signals == {
        "cases": 6,
        "missing": 1,
        "errors": 1,  # case 5; case 4 is missing, not an error
        "error_rate": pytest.approx(2 / 6),
        "latency_p50_ms": 250.0,
        "latency_p95_ms": pytest.approx(385.0),
        "latency_mean_ms": 250.0,
        "ttft_p50_ms": 20.0,
        "ttft_p95_ms": pytest.approx(29.0),
        "ttft_mean_ms": 20.0,
        "cost_per_case_usd": pytest.approx(0.02),
        "refusal_rate": 0.5,  # known for 1 and 2 only
        "escalation_rate": 0.5,  # known for 3 and 6
        "retry_rate": 0.25,
        "tool_calls_mean": 0.75,
        "trace_steps_mean": 1.25,
    }


# The judge graded cases 3 (errored) and 6 (passed, 0.5): both in the safety class.
JUDGE = {
    "n": 1,
    "passed": 1,
    "errors": 1,
    "pass_rate": 1.0,
    "interval": list(wilson_interval(1, 1)),
    "mean_score": 0.5,
}


def test_graders_over_the_whole_run():
    graders = summarise(ROWS)["graders"]
    assert graders == {
        "exact": {
            "n": 4,
            "passed": 3,
            "errors": 0,
            "pass_rate": 0.75,
            "interval": list(wilson_interval(3, 4)),
            "mean_score": 0.75,
        },
        "judge": JUDGE,
    }


def test_groups_by_tier_and_failure_class():
    summary = summarise(ROWS)
    assert list(summary["by_tier"]) == ["monitoring", "trusted"]
    assert list(summary["by_failure_class"]) == ["factual", "safety"]
    trusted, monitoring = summary["by_tier"]["trusted"], summary["by_tier"]["monitoring"]
    assert trusted["signals"]["cases"] == 3 and trusted["signals"]["error_rate"] == 0.0
    assert trusted["signals"]["latency_p50_ms"] == 200.0
    assert trusted["graders"]["exact"]["passed"] == 2 and trusted["graders"]["judge"]["errors"] == 1
    assert monitoring["signals"]["missing"] == 1 and monitoring["signals"]["errors"] == 1
    assert monitoring["signals"]["latency_p95_ms"] == 400.0  # one produced case with a latency
    assert monitoring["signals"]["refusal_rate"] is None  # never known there
    safety = summary["by_failure_class"]["safety"]
    assert safety["signals"]["cases"] == 3
    assert safety["signals"]["latency_mean_ms"] == 300.0  # cases 3 and 6
    assert safety["graders"]["judge"] == JUDGE  # all of the judge's grades are safety cases
    factual = summary["by_failure_class"]["factual"]
    assert factual["signals"]["error_rate"] == pytest.approx(1 / 3)
    assert "judge" not in factual["graders"]


def test_an_empty_run_has_no_figures():
    summary = summarise([])
    assert summary["signals"]["cases"] == 0
    assert summary["signals"]["error_rate"] is None and summary["signals"]["latency_p95_ms"] is None
    assert summary["graders"] == {} and summary["by_tier"] == {}


def close(a, b, path="summary"):
    """Equal, floats to 1e-9 relative (PostgreSQL and Python add in other orders)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), path
        for key in a:
            close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    else:
        assert a == b, path


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the SQL summary is PostgreSQL's")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_postgresql_aggregates_the_same_summary_as_the_stream(seed):
    rng = random.Random(seed)
    dataset = make_dataset()
    classes = [make_failure_class(slug) for slug in ("factual", "safety", "format")]
    graders = [make_grader(slug, kind="contains") for slug in ("exact", "judge", "schema")]
    run = Run.objects.create(dataset=dataset, candidate="v1")
    for i in range(60):
        case = make_case(dataset, f"c{i}", failure_class=rng.choice(classes), tier=rng.choice(TIERS))
        fate = rng.random()
        result = CaseResult.objects.create(
            run=run,
            case=case,
            case_revision=case.revision,
            missing=fate < 0.1,
            error="boom" if 0.05 <= fate < 0.2 else "",  # some missing cases say why
            latency_ms=rng.choice([None, rng.uniform(50, 3000)]),
            ttft_ms=rng.choice([None, rng.uniform(5, 300)]),
            cost_usd=rng.choice([None, rng.uniform(0, 0.01)]),
            refused=rng.choice([None, True, False]),
            escalated=rng.choice([None, True, False]),
            retries=rng.choice([0, 0, 1, 3]),
            tool_calls=rng.randrange(5),
            trace_steps=rng.randrange(9),
        )
        for grader in rng.sample(graders, rng.randrange(4)):
            outcome = rng.random()
            Grade.objects.create(
                case_result=result,
                grader=grader,
                passed=None if outcome < 0.1 else outcome < 0.6,
                score=None if outcome < 0.2 else rng.random(),
                error="timeout" if outcome > 0.95 else "",
            )
    close(summarise_run(run), summarise(iter_case_rows(run)))


@pytest.mark.django_db
def test_an_empty_run_summarised_on_either_path():
    run = Run.objects.create(dataset=make_dataset(), candidate="v1")
    close(summarise_run(run), summarise([]))


@pytest.mark.django_db
def test_a_checked_runs_summary_comes_from_the_verdicts_read_of_the_run(
    django_capture_on_commit_callbacks, monkeypatch
):
    # The verdict reads every row of the run; the summary is made on the way, not by a second
    # pass, and is the summary the run's own aggregation gives.
    from gates_app.services import request_check
    from grading_app import jobs
    from tests.factories import make_scenario, outputs_for

    s = make_scenario(n_trusted=4, n_monitoring=2)
    outputs = outputs_for(s["cases"])
    outputs[0]["output"] = "Yes"
    reference = summarise_run  # the aggregation the finaliser would have run otherwise

    def not_again(run):
        raise AssertionError("the run was summarised by a second pass")

    monkeypatch.setattr(jobs, "summarise_run", not_again)
    with django_capture_on_commit_callbacks(execute=True):
        check, _ = request_check(gate=s["gate"], candidate="v1", outputs=outputs)
    check.refresh_from_db()
    assert check.status == "done"
    assert check.run.summary == reference(check.run)
    assert check.run.summary["graders"]["answer-exact"]["passed"] == 5


@pytest.mark.django_db
def test_a_run_without_a_check_is_summarised_by_its_own_pass(django_capture_on_commit_callbacks):
    from grading_app.outputs import parse_outputs
    from grading_app.services import start_run
    from tests.factories import make_scenario, outputs_for

    s = make_scenario(n_trusted=2, n_monitoring=0)
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=s["dataset"], candidate="v1", outputs=parse_outputs(outputs_for(s["cases"])))
    run.refresh_from_db()
    assert run.summary == summarise_run(run) and run.summary["signals"]["cases"] == 2
