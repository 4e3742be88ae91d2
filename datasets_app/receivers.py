"""datasets_app's reactions: who owns a dataset (who reviews its flagged traces) enters the audit log."""

from typing import Any

from django.dispatch import receiver
from simple_history.signals import post_create_historical_record

from audit_app.choices import Action
from audit_app.history import record_history_change
from datasets_app.models import Dataset


@receiver(post_create_historical_record, dispatch_uid="datasets_app.audit_dataset_owner")
def audit_dataset_owner(sender: Any, history_instance: Any, **kwargs: Any) -> None:
    if sender is Dataset.history.model:
        record_history_change(Action.DATASET_CHANGED, history_instance, only=("owner",))
