"""Incidents: report a production failure, triage it, turn it into a pinned regression case."""

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from datasets_app.choices import CaseSource, IncidentStatus, Risk, Severity, Tier
from datasets_app.models import Case, Dataset, FailureClass, Incident
from datasets_app.services.cases import Actor, add_case, require_perm, stamp

SEVERITY_RISK = {Severity.CRITICAL: Risk.HIGH, Severity.HIGH: Risk.HIGH}


@transaction.atomic
def report_incident(
    *,
    title: str,
    severity: str = Severity.MEDIUM,
    description: str = "",
    input: dict[str, Any] | None = None,
    output: Any = None,
    trace: list[Any] | None = None,
    source_url: str = "",
    dataset: Dataset | None = None,
    failure_class: FailureClass | None = None,
    actor: Actor,
    reported_via: str = "",
    reporter: AbstractBaseUser | None = None,
) -> Incident:
    """Record what production did wrong; it waits in the admin for triage. ``reporter``
    defaults to ``actor`` (for a deploy token: the person who issued it)."""
    require_perm(actor, "datasets_app.add_incident", "report incidents")
    incident = Incident(
        title=title,
        severity=severity,
        description=description,
        input=input or {},
        output=output,
        trace=trace or [],
        source_url=source_url,
        dataset=dataset,
        failure_class=failure_class,
        reporter=reporter or actor,
        reported_via=reported_via,
    )
    incident.full_clean()
    stamp(incident, actor, "reported")
    incident.save()
    return incident


def _locked(incident: Incident) -> Incident:
    return Incident.objects.select_for_update().get(pk=incident.pk)


def _decide(incident: Incident, actor: AbstractBaseUser, status: str, note: str) -> Incident:
    require_perm(actor, "datasets_app.triage_incident", "triage incidents")
    incident = _locked(incident)
    if incident.status in (IncidentStatus.CONVERTED, IncidentStatus.DISMISSED):
        raise ValidationError(f"This incident is already {incident.get_status_display().lower()}.")
    incident.status = status
    incident.triage_note = note or incident.triage_note
    incident.triaged_by = actor
    incident.triaged_at = timezone.now()
    stamp(incident, actor, f"{status}: {note}" if note else status)
    incident.save()
    return incident


@transaction.atomic
def triage_incident(incident: Incident, *, actor: AbstractBaseUser, note: str = "") -> Incident:
    """Acknowledge an incident as real and worth a regression case."""
    return _decide(incident, actor, IncidentStatus.TRIAGED, note)


@transaction.atomic
def dismiss_incident(incident: Incident, *, actor: AbstractBaseUser, reason: str) -> Incident:
    """Close an incident that is not a model failure (with the reason, kept forever)."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why the incident is dismissed."})
    return _decide(incident, actor, IncidentStatus.DISMISSED, reason.strip())


@transaction.atomic
def convert_incident(
    incident: Incident,
    *,
    actor: AbstractBaseUser,
    dataset: Dataset,
    failure_class: FailureClass,
    key: str,
    expected: dict[str, Any] | None = None,
) -> Case:
    """Make a pinned draft case from an incident: every later release must pass it.

    The case keeps the incident's input and links back to it; it still goes through review
    and audit like any case before it counts.
    """
    require_perm(actor, "datasets_app.triage_incident", "convert incidents")
    incident = _locked(incident)
    if incident.status in (IncidentStatus.CONVERTED, IncidentStatus.DISMISSED):
        raise ValidationError(f"This incident is already {incident.get_status_display().lower()}.")
    if not incident.input:
        raise ValidationError({"input": "The incident has no input to replay; add it before converting."})
    case = add_case(
        dataset=dataset,
        key=key,
        failure_class=failure_class,
        input=incident.input,
        expected=expected or {},
        tier=Tier.TRUSTED,
        risk=SEVERITY_RISK.get(incident.severity, Risk.NORMAL),
        tags=["incident"],
        pinned=True,
        source=CaseSource.INCIDENT,
        incident=incident,
        actor=actor,
    )
    incident.status = IncidentStatus.CONVERTED
    incident.dataset, incident.failure_class = dataset, failure_class
    incident.triaged_by = incident.triaged_by or actor
    incident.triaged_at = incident.triaged_at or timezone.now()
    stamp(incident, actor, f"converted to case {dataset.slug}/{key}")
    incident.save()
    return case
