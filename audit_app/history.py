"""Audit events for changes of governed configuration, from django-simple-history's records.

Gates, their rules, rubrics (owners) and datasets (owner) change through services, the admin
change form and apply_config alike; each change writes a historical record, so recording the
audit event from that record (same transaction, same user) covers every path at once.
"""

from typing import Any

from audit_app.services import record_event

HISTORY_TYPES = {"+": "created", "~": "changed", "-": "deleted"}


def _plain(value: Any) -> Any:
    """m2m values arrive as through rows ({"gate": 1, "user": 7}); keep the other side's ids."""
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return sorted(v.get("user", v.get("id")) for v in value)
    return value


def changes_of(history_instance: Any) -> dict[str, list[Any]]:
    """Field -> [before, after] against the previous record ([None, value] when created)."""
    previous = history_instance.prev_record if history_instance.history_type == "~" else None
    if previous is None:
        return {
            f.name: [None, getattr(history_instance, f.attname)]
            for f in history_instance.tracked_fields
            if f.editable
        }
    delta = history_instance.diff_against(previous)
    return {change.field: [_plain(change.old), _plain(change.new)] for change in delta.changes}


def record_history_change(action: str, history_instance: Any, *, only: tuple[str, ...] = ()) -> None:
    """One audit event for this historical record, unless nothing in ``only`` changed."""
    changed = changes_of(history_instance)
    if only:
        changed = {field: values for field, values in changed.items() if field in only}
        if not changed:
            return
    elif history_instance.history_type == "~" and not changed:
        return  # a save that changed nothing (or only timestamps) is not an act
    record_event(
        action,
        actor=history_instance.history_user,
        obj=history_instance.instance,
        reason=history_instance.history_change_reason or "",
        details={
            "history_id": history_instance.history_id,
            "change": HISTORY_TYPES.get(history_instance.history_type, history_instance.history_type),
            "object": str(history_instance.instance)[:200],
            "object_id": history_instance.id,
            "fields": changed,
        },
    )
