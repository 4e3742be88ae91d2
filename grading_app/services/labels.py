"""Human labels on judged grades, the ground truth judges are calibrated against."""

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet

from grading_app.models import Grade, HumanLabel


def review_queue(user: AbstractBaseUser) -> QuerySet[Grade]:
    """Judged results this reviewer has not labelled, in random order (a sample, not a backlog)."""
    mine = HumanLabel.objects.filter(grade=OuterRef("pk"), reviewer=user)
    return (
        Grade.objects.filter(rubric_version__isnull=False, passed__isnull=False)
        .exclude(Exists(mine))
        .select_related("case_result__case", "grader", "rubric_version__rubric")
        .order_by("?")
    )


@transaction.atomic
def label_grade(
    grade: Grade, *, actor: AbstractBaseUser, passed: bool, score: float | None = None, note: str = ""
) -> HumanLabel:
    """A reviewer's own judgement of a graded result (once per reviewer and grade)."""
    if not actor.has_perm("grading_app.add_humanlabel"):
        raise PermissionDenied("You are not allowed to label results.")
    if score is not None and not 0 <= score <= 1:
        raise ValidationError({"score": "A score lies between 0 and 1."})
    try:
        with transaction.atomic():
            return HumanLabel.objects.create(
                grade=grade, reviewer=actor, passed=passed, score=score, note=note
            )
    except IntegrityError:
        raise ValidationError("You already labelled this result.") from None
