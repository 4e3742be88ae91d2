"""gates_app's reactions: a finished run decides its check; gate changes enter the audit log."""

from typing import Any

from django.dispatch import receiver
from simple_history.signals import post_create_historical_record

from audit_app.choices import Action
from audit_app.history import record_history_change
from gates_app.models import Gate, GateRule
from gates_app.services import evaluate_check
from grading_app.models import Run
from grading_app.signals import run_finished


@receiver(run_finished, sender=Run, dispatch_uid="gates_app.evaluate_check_on_run_finished")
def decide_check_verdict(sender: type[Run], run: Run, rows: Any = None, **kwargs: Any) -> None:
    evaluate_check(run, rows=rows)


@receiver(post_create_historical_record, dispatch_uid="gates_app.audit_gate_changes")
def audit_gate_changes(sender: Any, history_instance: Any, **kwargs: Any) -> None:
    """Gate and rule changes are governed acts, whichever path saved them (service, admin form)."""
    if sender is Gate.history.model:
        record_history_change(Action.GATE_CHANGED, history_instance)
    elif sender is GateRule.history.model:
        record_history_change(Action.GATE_RULE_CHANGED, history_instance)
