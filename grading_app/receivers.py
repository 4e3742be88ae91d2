"""grading_app's reactions: who owns a rubric (who signs off its versions) enters the audit log."""

from typing import Any

from django.dispatch import receiver
from simple_history.signals import post_create_historical_record

from audit_app.choices import Action
from audit_app.history import record_history_change
from grading_app.models import Rubric


@receiver(post_create_historical_record, dispatch_uid="grading_app.audit_rubric_owners")
def audit_rubric_owners(sender: Any, history_instance: Any, **kwargs: Any) -> None:
    if sender is Rubric.history.model:
        record_history_change(Action.RUBRIC_CHANGED, history_instance, only=("owner", "co_owners"))
