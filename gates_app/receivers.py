"""gates_app's reaction to grading_app's one signal: a finished run decides its check."""

from typing import Any

from django.dispatch import receiver

from gates_app.services import evaluate_check
from grading_app.models import Run
from grading_app.signals import run_finished


@receiver(run_finished, sender=Run, dispatch_uid="gates_app.evaluate_check_on_run_finished")
def decide_check_verdict(sender: type[Run], run: Run, **kwargs: Any) -> None:
    evaluate_check(run)
