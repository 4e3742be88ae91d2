"""Case lifecycle: draft -> in_review -> active (audited) -> retired, with who did what.

The trusted tier decides releases, so its rules live here, where the admin, the API,
imports and commands all pass: a trusted case is audited by someone other than its
contributor, and editing an active trusted case sends it back to review.
"""

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from datasets_app.choices import CaseSource, CaseStatus, Risk, Tier
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


def save_dataset(
    *, slug: str, name: str, owner: AbstractBaseUser | None, description: str = "", actor: Actor = None
) -> Dataset:
    """Create or update a dataset by slug."""
    dataset = Dataset.objects.filter(slug=slug).first() or Dataset(slug=slug)
    dataset.name, dataset.owner, dataset.description = name, owner, description
    dataset.full_clean()
    stamp(dataset, actor, "saved")
    dataset.save()
    return dataset


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
    if not isinstance(expected, dict):
        errors["expected"] = ["Expected must be a JSON object (it may be empty: {})."]
    elif problems := _expected_errors(expected):
        errors["expected"] = problems
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        errors["tags"] = ["Tags must be a list of text."]
    if errors:
        raise ValidationError(errors)


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
    actor: Actor,
) -> Case:
    """Add a draft case contributed by ``actor``. It counts in runs only once active."""
    require_perm(actor, "datasets_app.add_case", "add cases")
    expected = expected if expected is not None else {}
    tags = tags if tags is not None else []
    validate_case_content(input, expected, tags)
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
        contributed_by=actor,
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
    for field, value in changes.items():
        setattr(case, field, value)
    validate_case_content(case.input, case.expected, case.tags)
    reason = f"edited {', '.join(sorted(changed))}"
    if changed & set(Case.CONTENT_FIELDS):
        case.revision += 1
        case.edited_by = actor
        if case.status == CaseStatus.ACTIVE and case.tier == Tier.TRUSTED:
            case.status = CaseStatus.IN_REVIEW
            reason += "; trusted content changed, back to review"
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


def _check_auditor(case: Case, actor: AbstractBaseUser, tier: str) -> None:
    """A second pair of eyes: neither the contributor nor the last editor audits into trusted."""
    if tier != Tier.TRUSTED:
        return
    if case.contributed_by_id == actor.pk:
        raise PermissionDenied("A trusted case must be audited by someone other than its contributor.")
    if case.edited_by_id == actor.pk:
        raise PermissionDenied("You changed this case's content: someone else must audit it into trusted.")


@transaction.atomic
def audit_case(case: Case, *, actor: AbstractBaseUser, tier: str | None = None) -> Case:
    """Audit a draft or in-review case and make it active, optionally in another tier."""
    require_perm(actor, "datasets_app.audit_case", "audit cases")
    case = _locked(case)
    if case.status not in (CaseStatus.DRAFT, CaseStatus.IN_REVIEW):
        raise ValidationError(
            f"Only draft or in-review cases can be audited; this one is {case.get_status_display()}."
        )
    target_tier = tier or case.tier
    _check_auditor(case, actor, target_tier)
    case.tier = target_tier
    case.status = CaseStatus.ACTIVE
    case.audited_by = actor
    case.audited_at = timezone.now()
    stamp(case, actor, f"audited into {target_tier}")
    case.save()
    return case


@transaction.atomic
def promote_case(case: Case, *, actor: AbstractBaseUser) -> Case:
    """Move an active monitoring case into the trusted tier: an audit by a second person."""
    require_perm(actor, "datasets_app.audit_case", "promote cases to the trusted tier")
    case = _locked(case)
    if case.status != CaseStatus.ACTIVE or case.tier != Tier.MONITORING:
        raise ValidationError("Only active monitoring cases can be promoted to trusted.")
    _check_auditor(case, actor, Tier.TRUSTED)
    case.tier = Tier.TRUSTED
    case.audited_by = actor
    case.audited_at = timezone.now()
    stamp(case, actor, "promoted to trusted")
    case.save()
    return case


@transaction.atomic
def demote_case(case: Case, *, actor: AbstractBaseUser, reason: str = "") -> Case:
    """Move a trusted case to the monitoring tier (it stops deciding releases)."""
    require_perm(actor, "datasets_app.retire_case", "demote cases")
    case = _locked(case)
    if case.tier != Tier.TRUSTED:
        raise ValidationError("Only trusted cases can be demoted.")
    case.tier = Tier.MONITORING
    stamp(case, actor, f"demoted to monitoring: {reason}" if reason else "demoted to monitoring")
    case.save()
    return case


@transaction.atomic
def retire_case(case: Case, *, actor: Actor, reason: str = "") -> Case:
    """Retire a case: it stops counting in runs and keeps its whole history."""
    require_perm(actor, "datasets_app.retire_case", "retire cases")
    case = _locked(case)
    if case.status == CaseStatus.RETIRED:
        raise ValidationError("This case is already retired.")
    case.status = CaseStatus.RETIRED
    stamp(case, actor, f"retired: {reason}" if reason else "retired")
    case.save()
    return case
