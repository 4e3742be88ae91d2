"""Retiring or unpinning a pinned case takes two people: one requests with a reason, a second
(another dataset owner, or an owner of a gate on the dataset) confirms or declines.

A pinned case is the promise that an incident stays fixed; one person alone never ends it.
"""

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from audit_app.choices import Action
from audit_app.services import record_event
from datasets_app import extensions
from datasets_app.choices import CaseStatus, PinnedChange, RequestStatus
from datasets_app.models import Case, PinnedCaseRequest
from datasets_app.services.cases import require_perm, set_retired, stamp


def _reason(text: str, field: str = "reason") -> str:
    if not text or not text.strip():
        raise ValidationError({field: "Say why: it is recorded with the decision."})
    return text.strip()


@transaction.atomic
def request_pinned_change(
    case: Case, *, actor: AbstractBaseUser, change: str, reason: str
) -> PinnedCaseRequest:
    """Ask to retire or unpin a pinned case; nothing changes until someone else confirms."""
    require_perm(actor, "datasets_app.retire_case", "ask to retire or unpin pinned cases")
    reason = _reason(reason)
    if change not in PinnedChange.values:
        raise ValidationError({"change": f"Unknown change {change!r} (retire or unpin)."})
    case = Case.objects.select_for_update().get(pk=case.pk)
    if not case.pinned:
        raise ValidationError(f"{case.key} is not pinned: retire it directly.")
    if change == PinnedChange.RETIRE and case.status == CaseStatus.RETIRED:
        raise ValidationError(f"{case.key} is already retired; ask to unpin it instead.")
    if PinnedCaseRequest.objects.filter(case=case, status=RequestStatus.OPEN).exists():
        raise ValidationError(f"{case.key} already has an open request; decide or withdraw it first.")
    request = PinnedCaseRequest.objects.create(case=case, change=change, reason=reason, requested_by=actor)
    record_event(
        Action.PINNED_CHANGE_REQUESTED,
        actor=actor,
        obj=case,
        reason=reason,
        details={"request": request.pk, "change": change, "key": case.key},
    )
    return request


def may_decide(request: PinnedCaseRequest, actor: AbstractBaseUser) -> bool:
    """Another dataset owner, or an owner of a gate on the case's dataset; never the requester."""
    if actor.pk == request.requested_by_id:
        return False
    return actor.has_perm("datasets_app.retire_case") or extensions.may_confirm_pinned_change(
        request.case, actor
    )


def decision_refusal(request: PinnedCaseRequest, actor: AbstractBaseUser) -> Exception | None:
    """Why ``actor`` may not confirm or decline ``request`` now (None: they may; buttons ask too)."""
    if request.status != RequestStatus.OPEN:
        return ValidationError(f"This request is already {request.get_status_display().lower()}.")
    if actor.pk == request.requested_by_id:
        return PermissionDenied("You asked for this change: a second person must decide it.")
    if not may_decide(request, actor):
        return PermissionDenied(
            "Only another dataset owner or an owner of a gate on this dataset decides it."
        )
    return None


def _locked_open(request: PinnedCaseRequest, actor: AbstractBaseUser) -> PinnedCaseRequest:
    request = PinnedCaseRequest.objects.select_for_update().select_related("case").get(pk=request.pk)
    if refusal := decision_refusal(request, actor):
        raise refusal
    return request


def _close(request: PinnedCaseRequest, actor: AbstractBaseUser, status: str, note: str) -> None:
    request.status, request.decided_by, request.decided_at = status, actor, timezone.now()
    request.decision_note = note
    request.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])


@transaction.atomic
def confirm_pinned_change(request: PinnedCaseRequest, *, actor: AbstractBaseUser, note: str = "") -> Case:
    """The second person confirms: the case is unpinned (and, for a retirement, retired)."""
    request = _locked_open(request, actor)
    case = Case.objects.select_for_update().get(pk=request.case_id)
    _close(request, actor, RequestStatus.CONFIRMED, note.strip())
    why = f"{request.reason} (requested by {request.requested_by}, confirmed by {actor})"
    case.pinned = False
    case.revision += 1
    if request.change == PinnedChange.RETIRE and case.status != CaseStatus.RETIRED:
        case = set_retired(case, actor, f"pinned case retired: {why}")
    else:
        stamp(case, actor, f"unpinned: {why}")
        case.save()
    record_event(
        Action.PINNED_CHANGE_CONFIRMED,
        actor=actor,
        obj=case,
        reason=note.strip(),
        details={
            "request": request.pk,
            "change": request.change,
            "key": case.key,
            "requested_by": request.requested_by_id,
            "request_reason": request.reason,
        },
    )
    return case


@transaction.atomic
def decline_pinned_change(
    request: PinnedCaseRequest, *, actor: AbstractBaseUser, note: str
) -> PinnedCaseRequest:
    """The second person says no, and why; the case stays pinned."""
    note = _reason(note, "note")
    request = _locked_open(request, actor)
    _close(request, actor, RequestStatus.DECLINED, note)
    record_event(
        Action.PINNED_CHANGE_DECLINED,
        actor=actor,
        obj=request.case,
        reason=note,
        details={"request": request.pk, "change": request.change, "key": request.case.key},
    )
    return request


@transaction.atomic
def withdraw_pinned_change(request: PinnedCaseRequest, *, actor: AbstractBaseUser) -> PinnedCaseRequest:
    """The requester takes the request back."""
    request = PinnedCaseRequest.objects.select_for_update().select_related("case").get(pk=request.pk)
    if request.status != RequestStatus.OPEN:
        raise ValidationError(f"This request is already {request.get_status_display().lower()}.")
    if actor.pk != request.requested_by_id:
        raise PermissionDenied("Only the person who asked withdraws a request.")
    _close(request, actor, RequestStatus.WITHDRAWN, "")
    record_event(
        Action.PINNED_CHANGE_WITHDRAWN,
        actor=actor,
        obj=request.case,
        details={"request": request.pk, "change": request.change, "key": request.case.key},
    )
    return request
