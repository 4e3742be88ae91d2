"""Reading a run's case rows as a stream (grading_app.results.iter_case_rows): every field as
stored, grades on the right case, case id order, whatever the chunk size of the fetch."""

import pytest
from django.db import connection

from gates_app.evaluation import pair_by_case
from grading_app import results
from grading_app.models import CaseResult, Grade, Grader, Run
from grading_app.results import CaseRow, GradeRow, iter_case_rows
from tests.factories import make_case, make_dataset, make_failure_class, make_grader

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored():
    """Two runs over five cases; results written in an order other than the cases' (as chunks
    finishing out of order write them), with every kind of value a row can hold."""
    dataset = make_dataset()
    safety = make_failure_class("safety")
    exact, judge = make_grader("exact"), make_grader("contains", kind="contains")
    cases = [
        make_case(dataset, "a-plain"),
        make_case(dataset, "b-tagged", tags=["billing", "eu"], risk="high", pinned=True),
        make_case(dataset, "c-safety", failure_class=safety, tier="monitoring"),
        make_case(dataset, "d-missing"),
        make_case(dataset, "e-errored"),
    ]
    run, other = (Run.objects.create(dataset=dataset, candidate=c) for c in ("v1", "v0"))
    fields = {
        "a-plain": {"latency_ms": 810.5, "ttft_ms": 120.0, "input_tokens": 12, "output_tokens": 40},
        "b-tagged": {
            "cost_usd": 0.0031,
            "tool_calls": 2,
            "trace_steps": 5,
            "retries": 1,
            "refused": False,
            "escalated": True,
            "tool_sequence": ["lookup_order", "refund"],
        },
        "c-safety": {"refused": True, "tool_sequence": ["lookup_order"]},
        "d-missing": {"missing": True, "output": None},
        "e-errored": {"error": "TimeoutError: the target did not answer"},
    }
    by_key = {c.key: c for c in cases}
    for key in ("e-errored", "b-tagged", "d-missing", "a-plain", "c-safety"):
        case = by_key[key]
        result = CaseResult.objects.create(
            run=run, case=case, case_revision=case.revision, **{"output": "No", **fields[key]}
        )
        CaseResult.objects.create(run=other, case=case, case_revision=case.revision, output="Yes")
        if key in ("a-plain", "b-tagged", "c-safety"):
            Grade.objects.create(case_result=result, grader=exact, score=1.0, passed=True)
        if key == "b-tagged":
            Grade.objects.create(case_result=result, grader=judge, error="ValueError: no expected")
        if key == "c-safety":
            Grade.objects.create(case_result=result, grader=judge, score=0.0, passed=False)
    return run, by_key


def expected_rows(by_key: dict) -> list[CaseRow]:
    def row(key: str, **fields) -> CaseRow:
        case = by_key[key]
        base = {
            "case_id": case.pk,
            "key": key,
            "tier": case.tier,
            "failure_class": case.failure_class.slug,
            "risk": case.risk,
            "tags": case.tags,
            "pinned": case.pinned,
            "missing": False,
            "error": "",
        }
        return CaseRow(**{**base, **fields})

    passed = GradeRow(score=1.0, passed=True)
    return sorted(
        [
            row(
                "a-plain",
                latency_ms=810.5,
                ttft_ms=120.0,
                input_tokens=12,
                output_tokens=40,
                grades={"exact": passed},
            ),
            row(
                "b-tagged",
                cost_usd=0.0031,
                tool_calls=2,
                trace_steps=5,
                retries=1,
                refused=False,
                escalated=True,
                tool_sequence=["lookup_order", "refund"],
                grades={"exact": passed, "contains": GradeRow(None, None, "ValueError: no expected")},
            ),
            row(
                "c-safety",
                refused=True,
                tool_sequence=["lookup_order"],
                grades={"exact": passed, "contains": GradeRow(score=0.0, passed=False)},
            ),
            row("d-missing", missing=True),
            row("e-errored", error="TimeoutError: the target did not answer"),
        ],
        key=lambda r: r.case_id,
    )


@pytest.mark.parametrize("chunk_rows", [2000, 2, 1])
def test_rows_hold_every_stored_value_in_case_id_order(stored, monkeypatch, chunk_rows):
    # Fetched 1 or 2 rows at a time, the grades still land on their own case.
    monkeypatch.setattr(results, "CHUNK_ROWS", chunk_rows)
    run, by_key = stored
    rows = list(iter_case_rows(run))
    assert rows == expected_rows(by_key)
    assert rows[1].tags == ["billing", "eu"] and rows[1].pinned is True


def test_rows_are_read_lazily(stored, django_assert_num_queries):
    run, _ = stored
    stream = iter_case_rows(run.pk)
    with django_assert_num_queries(0):
        pass  # nothing is read before the first row is asked for
    with django_assert_num_queries(3):  # the results with their cases, the grades, the graders
        first = next(stream)
    assert first.key == "a-plain"


def test_a_run_without_results_has_no_rows():
    run = Run.objects.create(dataset=make_dataset(), candidate="v1")
    assert list(iter_case_rows(run)) == []


def row(case_id: int) -> CaseRow:
    return CaseRow(case_id, f"k{case_id}", "trusted", "factual", "normal", [], False, False, "")


def test_pairing_matches_cases_on_both_sides_in_case_id_order():
    pairs = pair_by_case([row(3), row(1), row(4)], iter([row(1), row(2), row(4)]))
    assert [(c and c.case_id, b and b.case_id) for c, b in pairs] == [(1, 1), (None, 2), (3, None), (4, 4)]


def test_pairing_refuses_a_stream_out_of_order():
    # A stream is read once, so it cannot be sorted: pairing it out of order would pair wrong cases.
    with pytest.raises(ValueError, match="out of case id order"):
        list(pair_by_case(iter([row(2), row(1)]), None))


def test_rows_can_carry_only_some_graders_grades(stored):
    run, by_key = stored
    rows = list(iter_case_rows(run, graders={"contains"}))
    assert [sorted(r.grades) for r in rows] == [[], ["contains"], ["contains"], [], []]
    assert [r.key for r in rows] == [r.key for r in expected_rows(by_key)]  # every case still there
    # No grader at all (a baseline no paired rule compares): every case, no grade.
    assert [(r.key, r.grades) for r in iter_case_rows(run, graders=set())] == [
        (r.key, {}) for r in expected_rows(by_key)
    ]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_grades_are_read_by_index_probes_whatever_the_statistics_say(stored):
    # The finaliser reads a run before autovacuum has counted its rows. A join planned on those
    # statistics compared every result with every grade of a grader (7 s at 10,000 cases); the
    # grades are read by one index probe per result instead, whatever the planner believes.
    run, _ = stored
    exact = Grader.objects.get(slug="exact")
    with connection.cursor() as cursor:
        for of_graders, params in (("", [run.pk]), ("AND g.grader_id = ANY(%s)", [[exact.pk], run.pk])):
            sql = results._lateral_grades_sql().format(of_graders=of_graders)
            cursor.execute("SET LOCAL cursor_tuple_fraction = 0.1")  # as for a server-side cursor
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(line for (line,) in cursor.fetchall())
            assert "Join Filter" not in plan, plan
            assert "case_result_id = r.id" in plan, plan  # the grade side probed per result
