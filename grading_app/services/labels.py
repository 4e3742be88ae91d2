"""Human labels on judged grades, the ground truth judges are calibrated against."""

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet

from grading_app.models import Grade, HumanLabel


def labellable() -> QuerySet[Grade]:
    """Grades a person may label: a judge's verdict (a rubric version, and pass or fail). A code
    grader's grade, or a judge's error, is nothing a judge is calibrated on."""
    return Grade.objects.filter(rubric_version__isnull=False, passed__isnull=False)


def label_refusal(grade: Grade) -> str | None:
    """Why ``grade`` is not offered for labelling (None: it is), whatever path asks."""
    if grade.rubric_version_id is None:
        return f"Only a judge's verdicts are labelled; {grade.grader} is not a judge."
    if grade.passed is None:
        return "The judge gave no verdict on this result (it errored): there is nothing to label."
    return None


def review_queue(user: AbstractBaseUser) -> QuerySet[Grade]:
    """Judged results this reviewer has not labelled, in random order (a sample, not a backlog)."""
    mine = HumanLabel.objects.filter(grade=OuterRef("pk"), reviewer=user)
    return (
        labellable()
        .exclude(Exists(mine))
        .select_related("case_result__case", "grader", "rubric_version__rubric")
        .order_by("?")
    )


@transaction.atomic
def label_grade(
    grade: Grade, *, actor: AbstractBaseUser, passed: bool, score: float | None = None, note: str = ""
) -> HumanLabel:
    """A reviewer's own judgement of a judge's verdict (once per reviewer and grade); only what
    the review queue would offer, however the grade's id arrives."""
    if not actor.has_perm("grading_app.add_humanlabel"):
        raise PermissionDenied("You are not allowed to label results.")
    if refusal := label_refusal(grade):
        raise ValidationError(refusal)
    if score is not None and not 0 <= score <= 1:
        raise ValidationError({"score": "A score lies between 0 and 1."})
    try:
        with transaction.atomic():
            return HumanLabel.objects.create(
                grade=grade, reviewer=actor, passed=passed, score=score, note=note
            )
    except IntegrityError:
        raise ValidationError("You already labelled this result.") from None
