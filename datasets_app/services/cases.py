"""Case lifecycle: draft -> in_review -> active (audited) -> retired, with who did what.

The trusted tier decides releases, so its rules live here, where the admin, the API,
imports and commands all pass: a trusted case is audited by someone other than its
contributor and everyone who changed its content since its last audit; editing an active
trusted case sends it back to review. A pinned case (an incident that must stay fixed) is
audited only if a grader reads it, and is retired or unpinned only by two people
(datasets_app.services.pinned). Audits, retirements and restores are audit events.
"""

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from audit_app.choices import Action
from audit_app.services import record_event
from datasets_app import extensions
from datasets_app.choices import CaseSource, CaseStatus, Risk, Tier
from datasets_app.conversations import conversation_errors
from datasets_app.models import Case, Dataset, FailureClass

Actor = AbstractBaseUser | None  # None: the system itself (a token checked at the API boundary)


def require_perm(actor: Actor, perm: str, doing: str) -> None:
    """Users need ``perm``; the system (actor None) was authorised where the request came in."""
    if actor is not None and not actor.has_perm(perm):
        raise PermissionDenied(f"You are not allowed to {doing}.")


def stamp(obj: Any, actor: Actor, reason: str) -> None:
    """Attribute the history row the next save writes, also outside a web request."""
    obj._history_user = actor
    obj._change_reason = reason


def save_failure_class(*, slug: str, name: str, description: str = "", actor: Actor = None) -> FailureClass:
    """Create or update a failure class by slug."""
    failure_class = FailureClass.objects.filter(slug=slug).first() or FailureClass(slug=slug)
    failure_class.name, failure_class.description = name, description
    failure_class.full_clean()
    stamp(failure_class, actor, "saved")
    failure_class.save()
    return failure_class


# Conventional ``expected`` keys (DESIGN.md section 4) and what each must hold, so a typo
# in a case is caught when it is written, not when a grader silently skips it.
EXPECTED_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "answer": (str, list),
    "contains": (str, list),
    "not_contains": (str, list),
    "pattern": (str,),
    "schema": (dict,),
    "number": (int, float),
    "tolerance": (int, float),
    "must_refuse": (bool,),
    "is_refusal": (bool,),
    "must_abstain": (bool,),
    "citations": (list,),
    "tools": (list,),
    "tools_ordered": (bool,),
    "forbidden_tools": (list,),
    "max_tool_calls": (int,),
    "requires_approval": (list,),
}
_TYPE_NAMES = {
    str: "text",
    list: "a list",
    dict: "an object",
    int: "a number",
    float: "a number",
    bool: "true or false",
}


def _expected_errors(expected: dict[str, Any]) -> list[str]:
    problems = []
    for key, types in EXPECTED_KEY_TYPES.items():
        if key not in expected:
            continue
        value = expected[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            wanted = " or ".join(dict.fromkeys(_TYPE_NAMES[t] for t in types))
            problems.append(f"expected.{key} must be {wanted}.")
        elif isinstance(value, list) and not all(isinstance(item, str) for item in value):
            problems.append(f"expected.{key} must be a list of text.")
    return problems


def validate_case_content(input_value: Any, expected: Any, tags: Any) -> None:
    """Shape checks shared by admin forms, imports and the API; raises ValidationError by field."""
    errors: dict[str, list[str]] = {}
    if not isinstance(input_value, dict) or not input_value:
        errors["input"] = ['Input must be a non-empty JSON object, e.g. {"messages": [...]}.']
    else:
        messages = input_value.get("messages")
        if messages is not None and not (
            isinstance(messages, list)
            and messages
            and all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m for m in messages
            )
        ):
            errors["input"] = ['input.messages must be a non-empty list of {"role": ..., "content": ...}.']
        if problems := conversation_errors(input_value):
            errors.setdefault("input", []).extend(problems)
        declared = input_value.get("tool_results")
        if declared is not None and not (
            isinstance(declared, dict) and declared and all(isinstance(k, str) and k for k in declared)
        ):
            errors.setdefault("input", []).append(
                "input.tool_results must be an object from a tool's name to what it returns, "
                'e.g. {"lookup_order": {"status": "lost"}}.'
            )
    if not isinstance(expected, dict):
        errors["expected"] = ["Expected must be a JSON object (it may be empty: {})."]
    elif problems := _expected_errors(expected):
        errors["expected"] = problems
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        errors["tags"] = ["Tags must be a list of text."]
    if errors:
        raise ValidationError(errors)


def check_references(input_value: Any) -> None:
    """What the input names must exist (a simulated user's rubric): shared by the case form,
    add_case, edit_case and the audit, as the API, imports and apply_config check it."""
    if problems := extensions.reference_problems(input_value):
        raise ValidationError({"input": problems})


@transaction.atomic
def add_case(
    *,
    dataset: Dataset,
    key: str,
    failure_class: FailureClass,
    input: dict[str, Any],
    expected: dict[str, Any] | None = None,
    tier: str = Tier.MONITORING,
    risk: str = Risk.NORMAL,
    tags: list[str] | None = None,
    pinned: bool = False,
    source: str = CaseSource.AUTHORED,
    incident: Any = None,
    context: dict[str, Any] | None = None,
    actor: Actor,
    contributor: AbstractBaseUser | None = None,
) -> Case:
    """Add a draft case contributed by ``actor`` (or by ``contributor``: the issuer of the
    token it came through). It counts in runs only once active."""
    require_perm(actor, "datasets_app.add_case", "add cases")
    expected = expected if expected is not None else {}
    tags = tags if tags is not None else []
    validate_case_content(input, expected, tags)
    check_references(input)
    case = Case(
        dataset=dataset,
        key=key,
        failure_class=failure_class,
        input=input,
        expected=expected,
        tier=tier,
        risk=risk,
        tags=tags,
        pinned=pinned,
        source=source,
        context=context or {},
        contributed_by=contributor or actor,
        incident=incident,
        status=CaseStatus.DRAFT,
    )
    case.full_clean()
    stamp(case, actor, "added")
    case.save()
    return case


def _locked(case: Case) -> Case:
    return Case.objects.select_for_update().get(pk=case.pk)


@transaction.atomic
def edit_case(case: Case, *, actor: Actor, **changes: Any) -> Case:
    """Change a case's content or description fields.

    A content change is a new revision; on an active trusted case it also withdraws the
    audit: the case goes back to review and stops counting until someone audits it again.
    """
    require_perm(actor, "datasets_app.change_case", "edit cases")
    case = _locked(case)
    if case.status == CaseStatus.RETIRED:
        raise ValidationError("A retired case cannot be edited.")
    allowed = {*Case.CONTENT_FIELDS, "key"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError(f"These fields cannot be edited here: {', '.join(sorted(unknown))}.")
    changed = {field for field, value in changes.items() if getattr(case, field) != value}
    if not changed:
        return case
    if "pinned" in changed and case.pinned:
        raise ValidationError(
            {"pinned": "Unpinning a pinned case takes two people: request it, and someone else confirms."}
        )
    for field, value in changes.items():
        setattr(case, field, value)
    validate_case_content(case.input, case.expected, case.tags)
    if "input" in changed:
        check_references(case.input)
    reason = f"edited {', '.join(sorted(changed))}"
    if changed & set(Case.CONTENT_FIELDS):
        case.revision += 1
        case.edited_by = actor
        note_editor(case, actor)
        if case.status == CaseStatus.ACTIVE and case.tier == Tier.TRUSTED:
            case.status = CaseStatus.IN_REVIEW
            reason += "; trusted content changed, back to review"
        elif case.status == CaseStatus.ACTIVE and case.pinned:
            # A pinned case is a promise; its changed content needs a second look too.
            case.status = CaseStatus.IN_REVIEW
            reason += "; pinned content changed, back to review"
    case.full_clean()
    stamp(case, actor, reason)
    case.save()
    return case


@transaction.atomic
def submit_case(case: Case, *, actor: Actor) -> Case:
    """Send a draft case to review."""
    require_perm(actor, "datasets_app.submit_case", "submit cases for review")
    case = _locked(case)
    if case.status != CaseStatus.DRAFT:
        raise ValidationError(f"Only draft cases can be submitted; this one is {case.get_status_display()}.")
    case.status = CaseStatus.IN_REVIEW
    stamp(case, actor, "submitted for review")
    case.save()
    return case


def note_editor(case: Case, actor: Actor) -> None:
    """Remember who changed the content since the last audit (none of them may audit it)."""
    if actor is not None and actor.pk not in case.editors_since_audit:
        case.editors_since_audit = [*case.editors_since_audit, actor.pk]


def audit_refusal(case: Case, actor: AbstractBaseUser, tier: str) -> Exception | None:
    """What refuses ``actor``'s audit of ``case`` into ``tier``, or None (buttons ask too)."""
    if tier == Tier.TRUSTED:
        if case.contributed_by_id == actor.pk:
            return PermissionDenied("A trusted case must be audited by someone other than its contributor.")
        if actor.pk in case.editors_since_audit or case.edited_by_id == actor.pk:
            return PermissionDenied(
                "You changed this case's content since its last audit: someone else must audit it."
            )
    if problems := extensions.reference_problems(case.input):
        return ValidationError(f"This case cannot be played as it is: {'; '.join(problems)}.")
    if case.pinned and (problem := extensions.grading_problem(case)):
        return ValidationError(f"A pinned case must be gradable before it counts: {problem}.")
    return None


def _activate(case: Case, actor: AbstractBaseUser, tier: str, action: str, reason: str) -> Case:
    if refusal := audit_refusal(case, actor, tier):
        raise refusal
    previous_tier = case.tier
    case.tier = tier
    case.status = CaseStatus.ACTIVE
    case.audited_by = actor
    case.audited_at = timezone.now()
    case.editors_since_audit = []
    case.review_note = ""
    verb = "promoted to trusted" if action == Action.CASE_PROMOTED else f"audited into {tier}"
    stamp(case, actor, f"{verb}: {reason}" if reason else verb)
    case.save()
    record_event(
        action,
        actor=actor,
        obj=case,
        reason=reason,
        details={
            "dataset": case.dataset.slug,
            "key": case.key,
            "revision": case.revision,
            "tier": [previous_tier, tier],
            "pinned": case.pinned,
            "contributed_by": case.contributed_by_id,
        },
    )
    return case


@transaction.atomic
def audit_case(case: Case, *, actor: AbstractBaseUser, tier: str | None = None, reason: str = "") -> Case:
    """Audit a draft or in-review case and make it active, optionally in another tier."""
    require_perm(actor, "datasets_app.audit_case", "audit cases")
    case = _locked(case)
    if case.status not in (CaseStatus.DRAFT, CaseStatus.IN_REVIEW):
        raise ValidationError(
            f"Only draft or in-review cases can be audited; this one is {case.get_status_display()}."
        )
    return _activate(case, actor, tier or case.tier, Action.CASE_AUDITED, reason)


@transaction.atomic
def return_case(case: Case, *, actor: AbstractBaseUser, note: str) -> Case:
    """Send a case in review back to its author as a draft, saying what to change."""
    require_perm(actor, "datasets_app.audit_case", "return cases to their authors")
    if not note or not note.strip():
        raise ValidationError({"note": "Say what the author should change."})
    case = _locked(case)
    if case.status != CaseStatus.IN_REVIEW:
        raise ValidationError(f"Only cases in review are returned; this one is {case.get_status_display()}.")
    case.status = CaseStatus.DRAFT
    case.review_note = f"{actor.get_username()}: {note.strip()}"
    stamp(case, actor, f"returned to its author: {note.strip()}")
    case.save()
    record_event(Action.CASE_RETURNED, actor=actor, obj=case, reason=note.strip(), details={"key": case.key})
    return case


@transaction.atomic
def promote_case(case: Case, *, actor: AbstractBaseUser, reason: str = "") -> Case:
    """Move an active monitoring case into the trusted tier: an audit by a second person."""
    require_perm(actor, "datasets_app.audit_case", "promote cases to the trusted tier")
    case = _locked(case)
    if case.status != CaseStatus.ACTIVE or case.tier != Tier.MONITORING:
        raise ValidationError("Only active monitoring cases can be promoted to trusted.")
    return _activate(case, actor, Tier.TRUSTED, Action.CASE_PROMOTED, reason)


def _refuse_if_pinned(case: Case, doing: str) -> None:
    if case.pinned:
        raise ValidationError(
            f"{case.key} is pinned: {doing} it would let a fixed incident stop counting. "
            "Request the change; a second person (another dataset owner or a gate owner) confirms it."
        )


@transaction.atomic
def demote_case(case: Case, *, actor: AbstractBaseUser, reason: str = "") -> Case:
    """Move a trusted case to the monitoring tier (it stops deciding releases)."""
    require_perm(actor, "datasets_app.retire_case", "demote cases")
    case = _locked(case)
    if case.tier != Tier.TRUSTED:
        raise ValidationError("Only trusted cases can be demoted.")
    _refuse_if_pinned(case, "demoting")
    case.tier = Tier.MONITORING
    stamp(case, actor, f"demoted to monitoring: {reason}" if reason else "demoted to monitoring")
    case.save()
    record_event(Action.CASE_DEMOTED, actor=actor, obj=case, reason=reason, details={"key": case.key})
    return case


def set_retired(case: Case, actor: Actor, reason: str) -> Case:
    """Retire a locked case (no rule checks: callers have made them)."""
    if case.status == CaseStatus.RETIRED:
        raise ValidationError("This case is already retired.")
    previous = case.status
    case.status = CaseStatus.RETIRED
    stamp(case, actor, f"retired: {reason}" if reason else "retired")
    case.save()
    record_event(
        Action.CASE_RETIRED, actor=actor, obj=case, reason=reason, details={"key": case.key, "from": previous}
    )
    return case


@transaction.atomic
def retire_case(case: Case, *, actor: Actor, reason: str = "") -> Case:
    """Retire a case: it stops counting in runs and keeps its whole history."""
    require_perm(actor, "datasets_app.retire_case", "retire cases")
    case = _locked(case)
    _refuse_if_pinned(case, "retiring")
    return set_retired(case, actor, reason)


@transaction.atomic
def restore_case(case: Case, *, actor: AbstractBaseUser, reason: str) -> Case:
    """Bring a retired case back: it returns to review and counts again once audited."""
    require_perm(actor, "datasets_app.retire_case", "restore cases")
    if not reason or not reason.strip():
        raise ValidationError({"reason": "Say why the case comes back."})
    case = _locked(case)
    if case.status != CaseStatus.RETIRED:
        raise ValidationError("Only retired cases can be restored.")
    case.status = CaseStatus.IN_REVIEW
    stamp(case, actor, f"restored to review: {reason.strip()}")
    case.save()
    record_event(
        Action.CASE_RESTORED, actor=actor, obj=case, reason=reason.strip(), details={"key": case.key}
    )
    return case
