"""A case result's outcome (passed, failed, errored, no grade), computed in SQL for lists and counts."""

from typing import Any

from django.db import models
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Value, When

from grading_app.models import CaseResult, Grade


class Outcome(models.TextChoices):
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    ERRORED = "errored", "Errored"
    UNGRADED = "ungraded", "No grade"


# A grade decided either way, or could not be decided (as the run summary counts it: an
# error, or no pass/fail at all). The Python twin is grade_outcome() below.
GRADE_PASSED = Q(passed=True, error="")
GRADE_FAILED = Q(passed=False, error="")
GRADE_ERRORED = ~Q(error="") | Q(passed__isnull=True)
# The candidate gave nothing to judge: no output, or its call failed.
PRODUCED_NOTHING = Q(missing=True) | ~Q(error="")

EXPLAINED = {
    Outcome.PASSED: "every grade passed",
    Outcome.FAILED: "some grade failed",
    Outcome.ERRORED: "no output, an error, or a grade that errored",
    Outcome.UNGRADED: "no grader applied",
}


def _grades(condition: Q | None = None) -> Exists:
    grades = Grade.objects.filter(case_result=OuterRef("pk"))
    return Exists(grades.filter(condition) if condition is not None else grades)


def with_outcome(queryset: QuerySet[CaseResult]) -> QuerySet[CaseResult]:
    """Annotate each result with ``outcome``, first match wins:

    errored   the candidate produced nothing (missing, or an error);
    failed    some grade failed, even if another errored (a known failure outranks an unknown);
    errored   some grade errored and none failed;
    passed    it has grades and every one passed;
    ungraded  no grader applied.

    EXISTS subqueries rather than a join to the grades or a query per row: one row per result
    stays one row, the database stops at the first matching grade, and a page of 100 results,
    a filter on the outcome and a count per outcome are each one query.
    """
    outcome = models.Case(
        When(PRODUCED_NOTHING, then=Value(Outcome.ERRORED.value)),
        When(_grades(GRADE_FAILED), then=Value(Outcome.FAILED.value)),
        When(_grades(GRADE_ERRORED), then=Value(Outcome.ERRORED.value)),
        When(_grades(), then=Value(Outcome.PASSED.value)),
        default=Value(Outcome.UNGRADED.value),
        output_field=models.CharField(),
    )
    return queryset.annotate(outcome=outcome)


def outcome_counts(queryset: QuerySet[CaseResult]) -> dict[str, int]:
    """How many results have each outcome, in one query."""
    counts = with_outcome(queryset).aggregate(
        total=Count("pk"), **{o.value: Count("pk", filter=Q(outcome=o.value)) for o in Outcome}
    )
    return {key: value or 0 for key, value in counts.items()}


def grade_outcome(grade: Any) -> Outcome:
    """One grade's outcome, the same conditions as GRADE_PASSED / GRADE_FAILED / GRADE_ERRORED."""
    if grade.error or grade.passed is None:
        return Outcome.ERRORED
    return Outcome.PASSED if grade.passed else Outcome.FAILED
