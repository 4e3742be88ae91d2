"""Writes that matter for datasets: case lifecycle and audit, with the acting user recorded."""

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from datasets_app.choices import CaseSource, CaseStatus, Risk, Tier
from datasets_app.models import Case, Dataset, FailureClass


def save_failure_class(*, slug: str, name: str, description: str = "") -> FailureClass:
    """Create or update a failure class by slug."""
    failure_class, _ = FailureClass.objects.update_or_create(
        slug=slug, defaults={"name": name, "description": description}
    )
    return failure_class


def save_dataset(*, slug: str, name: str, owner: AbstractBaseUser | None, description: str = "") -> Dataset:
    """Create or update a dataset by slug."""
    dataset, _ = Dataset.objects.update_or_create(
        slug=slug, defaults={"name": name, "owner": owner, "description": description}
    )
    return dataset


def validate_case_content(input_value: Any, expected: Any, tags: Any) -> None:
    """Shape checks shared by admin forms, imports and the API; raises ValidationError."""
    errors: dict[str, str] = {}
    if not isinstance(input_value, dict) or not input_value:
        errors["input"] = 'Input must be a non-empty JSON object, e.g. {"messages": [...]}.'
    else:
        messages = input_value.get("messages")
        if messages is not None and not (
            isinstance(messages, list)
            and all(isinstance(m, dict) and "role" in m and "content" in m for m in messages)
        ):
            errors["input"] = 'input.messages must be a list of {"role": ..., "content": ...}.'
    if not isinstance(expected, dict):
        errors["expected"] = "Expected must be a JSON object (it may be empty: {})."
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        errors["tags"] = "Tags must be a list of strings."
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
    actor: AbstractBaseUser | None,
) -> Case:
    """Add a draft case contributed by ``actor``. It counts in runs only once active."""
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
        status=CaseStatus.DRAFT,
    )
    case.full_clean()
    _stamp(case, actor, "added")
    case.save()
    return case


def _locked(case: Case) -> Case:
    return Case.objects.select_for_update().get(pk=case.pk)


def _stamp(case: Case, actor: AbstractBaseUser | None, reason: str) -> None:
    """Attribute the history row this save writes, also outside a web request."""
    case._history_user = actor
    case._change_reason = reason


@transaction.atomic
def submit_case(case: Case, *, actor: AbstractBaseUser) -> Case:
    """Send a draft case to review."""
    case = _locked(case)
    if case.status != CaseStatus.DRAFT:
        raise ValidationError(f"Only draft cases can be submitted; this one is {case.status}.")
    case.status = CaseStatus.IN_REVIEW
    _stamp(case, actor, "submitted for review")
    case.save()
    return case


@transaction.atomic
def audit_case(case: Case, *, actor: AbstractBaseUser, tier: str | None = None) -> Case:
    """Audit a case in review and make it active, optionally in another tier.

    The trusted tier decides releases, so its cases are audited by someone other than
    their contributor: the rule lives here so that admin, API and commands all obey it.
    """
    case = _locked(case)
    if case.status not in (CaseStatus.DRAFT, CaseStatus.IN_REVIEW):
        raise ValidationError(f"Only draft or in-review cases can be audited; this one is {case.status}.")
    target_tier = tier or case.tier
    if target_tier == Tier.TRUSTED and case.contributed_by_id == actor.pk:
        raise PermissionDenied("A trusted case must be audited by someone other than its contributor.")
    case.tier = target_tier
    case.status = CaseStatus.ACTIVE
    case.audited_by = actor
    case.audited_at = timezone.now()
    _stamp(case, actor, f"audited into {target_tier}")
    case.save()
    return case


@transaction.atomic
def retire_case(case: Case, *, actor: AbstractBaseUser, reason: str = "") -> Case:
    """Retire a case: it stops counting in runs and keeps its whole history."""
    case = _locked(case)
    case.status = CaseStatus.RETIRED
    _stamp(case, actor, f"retired: {reason}" if reason else "retired")
    case.save()
    return case
