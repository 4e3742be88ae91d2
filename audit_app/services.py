"""Writing and verifying the audit log. Every governed act calls ``record_event`` in its own
transaction, so the act and its record commit together or not at all."""

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone

from audit_app.choices import Action
from audit_app.context import current_via
from audit_app.models import GENESIS, AuditEvent

# Any fixed 64-bit number: the advisory lock that makes appends to the chain one at a time.
CHAIN_LOCK_ID = 0x6576616C67617465  # "evalgate"
HASHED_FIELDS = (
    "created_at",
    "actor_id",
    "actor_username",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "reason",
    "details",
    "via",
    "prev_hash",
)


def _canonical(value: Any) -> Any:
    """JSON as the database gives it back (jsonb drops key order): round-trip, then sort keys."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def event_hash(event: AuditEvent) -> str:
    """SHA-256 over the event's fields and the previous event's hash."""
    payload = {name: getattr(event, name) for name in HASHED_FIELDS}
    payload["created_at"] = event.created_at.astimezone(UTC).isoformat()
    payload["details"] = _canonical(event.details)
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _lock_chain() -> str:
    """Hold the chain for this transaction and return the hash of its last event."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_ID])
    # SQLite runs one writer at a time (IMMEDIATE transactions), which serialises appends too.
    last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
    return last or GENESIS


def record_event(
    action: Action | str,
    *,
    actor: AbstractBaseUser | None,
    obj: models.Model | None = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
    via: str = "",
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction (or its own)."""
    with transaction.atomic():
        event = AuditEvent(
            created_at=timezone.now(),
            actor=actor if actor is not None and actor.pk else None,
            actor_username=actor.get_username() if actor is not None and actor.pk else "",
            action=str(action),
            object_type=obj._meta.label_lower if obj is not None else "",
            object_id=str(obj.pk) if obj is not None and obj.pk is not None else "",
            object_repr=str(obj)[:300] if obj is not None else "",
            reason=reason or "",
            details=_canonical(details or {}),
            via=(via or current_via() or "system")[:300],
        )
        event.prev_hash = _lock_chain()
        event.hash = event_hash(event)
        event.save(force_insert=True)
    return event


def events_for(obj: models.Model) -> models.QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk))


@dataclass(frozen=True)
class ChainReport:
    events: int
    head: str
    broken_at: int | None = None  # id of the first event whose link or content does not hold
    problem: str = ""


def _walk() -> Iterator[AuditEvent]:
    yield from AuditEvent.objects.order_by("id").iterator(chunk_size=2000)


def verify_chain(expected_head: str = "") -> ChainReport:
    """Recompute every hash from the first event; report the first link that does not hold.

    ``expected_head`` is a head hash recorded earlier outside the database (verify_audit prints
    it): the chain must still contain it, which catches events cut off the end.
    """
    previous, count, seen_head = GENESIS, 0, not expected_head
    for event in _walk():
        count += 1
        if event.prev_hash != previous:
            return ChainReport(
                count,
                previous,
                event.pk,
                f"event #{event.pk} ({event.action}) does not follow the event before it: "
                "an event was removed, inserted or reordered just before it",
            )
        if event_hash(event) != event.hash:
            return ChainReport(
                count,
                previous,
                event.pk,
                f"event #{event.pk} ({event.action}) was changed after it was written",
            )
        previous = event.hash
        seen_head = seen_head or event.hash == expected_head
    if not seen_head:
        return ChainReport(
            count,
            previous,
            None,
            f"the recorded head {expected_head} is not in the chain: events were cut off its end",
        )
    return ChainReport(count, previous)
