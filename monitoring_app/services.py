"""Writes that matter in production monitoring, with the rules of who may make them.

Every path (admin, API, commands) goes through these functions: the admin's permission
checks only hide buttons, the rule is here.
"""

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from datasets_app.choices import CaseSource, Severity, Tier
from datasets_app.models import Case, Dataset, FailureClass, Incident
from datasets_app.services import add_case, report_incident
from grading_app import graders as registry
from grading_app.models import Grader
from grading_app.services.runs import rubric_version_for
from monitoring_app.choices import ReviewStatus
from monitoring_app.models import Alert, AlertRule, Monitor, MonitorSample, Source, Trace


def monitor_change_refusal(monitor: Monitor | None, user: AbstractBaseUser) -> str | None:
    """Why ``user`` may not change the monitor (None: they may). A monitor's owner says what it
    grades and when it alerts; a superuser may too."""
    if not user.has_perm(
        "monitoring_app.change_monitor" if monitor and monitor.pk else "monitoring_app.add_monitor"
    ):
        return "You may not set up monitors (the Gate owner role may)."
    if monitor is None or monitor.pk is None or user.is_superuser:
        return None
    owner_id = Monitor.objects.filter(pk=monitor.pk).values_list("owner_id", flat=True).first()
    if owner_id != user.pk:
        return "Only the monitor's owner changes it."
    return None


def judge_refusal(graders: list[Grader]) -> str | None:
    """Production traffic is judged only by signed-off rubrics: a judge grader whose rubric has
    no approved version cannot be put on a monitor."""
    unapproved = []
    for grader in graders:
        if registry.get_kind(grader.kind).needs_rubric:
            version = rubric_version_for(grader)
            if version is None or not version.is_approved:
                unapproved.append(grader.slug)
    if unapproved:
        return (
            f"Judge grader(s) {', '.join(unapproved)} have no approved rubric version: "
            "a monitor judges with signed-off rubrics only."
        )
    return None


def _owner_refusal(obj: Any, stored_owner_id: int | None, actor: AbstractBaseUser, what: str) -> str | None:
    """Ownership is what the other rules rest on: a non-superuser creates in their own name and
    cannot hand the object to someone else."""
    if actor.is_superuser:
        return None
    if obj.pk is None:
        if obj.owner_id not in (None, actor.pk):
            return f"Create {what} in your own name (a superuser may name another owner)."
        return None
    if obj.owner_id != stored_owner_id:
        return f"Only a superuser hands a {what} to another owner."
    return None


@transaction.atomic
def save_monitor(
    monitor: Monitor, *, actor: AbstractBaseUser, graders: list[Grader] | None = None
) -> Monitor:
    """Create or change a monitor; ``graders`` (when given) replaces its graders. A new monitor
    is owned by its creator unless a superuser names another owner."""
    refusal = monitor_change_refusal(monitor, actor)
    stored = (
        Monitor.objects.filter(pk=monitor.pk).values_list("owner_id", flat=True).first()
        if monitor.pk
        else None
    )
    refusal = refusal or _owner_refusal(monitor, stored, actor, "monitor")
    if refusal:
        raise PermissionDenied(refusal)
    if monitor.owner_id is None:
        monitor.owner = actor
    if graders is not None and (refusal := judge_refusal(graders)):
        raise ValidationError({"graders": refusal})
    monitor.full_clean()
    monitor._history_user = actor
    monitor.save()
    if graders is not None:
        monitor.graders.set(graders)
    return monitor


def save_alert_rules(monitor: Monitor, rules: list[dict[str, Any]], *, actor: AbstractBaseUser) -> None:
    """Replace the monitor's alert rules (its owner only, as for the monitor itself)."""
    refusal = monitor_change_refusal(monitor, actor)
    if refusal:
        raise PermissionDenied(refusal)
    for existing in AlertRule.objects.filter(monitor=monitor):
        existing._history_user = actor
        existing.delete()
    for fields in rules:
        rule = AlertRule(monitor=monitor, **fields)
        rule.full_clean()
        rule._history_user = actor
        rule.save()


def source_change_refusal(source: Source | None, user: AbstractBaseUser) -> str | None:
    """A source's redaction rules and retention are its owner's to say (they decide what of
    production is kept): only the owner, or a superuser, changes them."""
    if not user.has_perm(
        "monitoring_app.change_source" if source and source.pk else "monitoring_app.add_source"
    ):
        return "You may not set up trace sources (the Gate owner role may)."
    if source is None or source.pk is None or user.is_superuser:
        return None
    if Source.objects.filter(pk=source.pk).values_list("owner_id", flat=True).first() != user.pk:
        return "Only the source's owner changes its redaction and retention."
    return None


@transaction.atomic
def save_source(source: Source, *, actor: AbstractBaseUser) -> Source:
    refusal = source_change_refusal(source, actor)
    stored = (
        Source.objects.filter(pk=source.pk).values_list("owner_id", flat=True).first() if source.pk else None
    )
    refusal = refusal or _owner_refusal(source, stored, actor, "source")
    if refusal:
        raise PermissionDenied(refusal)
    if source.owner_id is None:
        source.owner = actor
    source.full_clean()
    source._history_user = actor
    source.save()
    return source


def acknowledge_refusal(alert: Alert, user: AbstractBaseUser) -> str | None:
    if alert.acknowledged_at is not None:
        return "The alert was already acknowledged."
    if user.pk != alert.monitor.owner_id and not user.is_superuser:
        return "Only the monitor's owner acknowledges its alerts."
    return None


def acknowledge_alert(alert: Alert, *, actor: AbstractBaseUser, note: str = "") -> Alert:
    with transaction.atomic():
        alert = Alert.objects.select_for_update().select_related("monitor").get(pk=alert.pk)
        refusal = acknowledge_refusal(alert, actor)
        if refusal:
            raise PermissionDenied(refusal)
        alert.acknowledged_by = actor
        alert.acknowledged_at = timezone.now()
        alert.note = note
        alert.save(update_fields=["acknowledged_by", "acknowledged_at", "note"])
    return alert


# --- Feeding the suite: traces into incidents and draft cases, and the review queue ---------


def trace_context(trace: Trace) -> dict[str, Any]:
    """Where a case or incident came from: enough to find the trace again and see what it did."""
    return {
        "source": trace.source.slug,
        "trace_id": trace.client_id,
        "time": trace.time.isoformat(),
        "release": trace.release,
        "observed_output": trace.output,
        "trace": trace.trace,
        "feedback": {
            "thumbs": trace.thumbs,
            "score": trace.feedback_score,
            "comment": trace.feedback_comment,
        },
    }


def case_key_for(trace: Trace) -> str:
    return slugify(f"prod-{trace.source.slug}-{trace.client_id}")[:200]


def _close_reviews(trace: Trace, actor: AbstractBaseUser, outcome: str) -> None:
    """Samples of the trace still waiting for review are settled by what was made of it."""
    MonitorSample.objects.filter(trace=trace, review=ReviewStatus.WAITING).update(
        review=outcome, reviewed_by=actor, reviewed_at=timezone.now()
    )


@transaction.atomic
def trace_to_incident(
    trace: Trace,
    *,
    actor: AbstractBaseUser | None,
    title: str,
    severity: str = Severity.MEDIUM,
    description: str = "",
    dataset: Dataset | None = None,
    failure_class: FailureClass | None = None,
    reporter: AbstractBaseUser | None = None,
    reported_via: str = "",
) -> Incident:
    """Open an incident carrying the trace (input, output, steps); the existing triage ->
    pinned-case path takes it from there. Needs the right to report incidents."""
    where = (
        f"Production trace {trace.client_id} of {trace.source.slug} "
        f"(release {trace.release or '?'}, {trace.time:%Y-%m-%d %H:%M} UTC)."
    )
    incident = report_incident(
        title=title,
        severity=severity,
        description=f"{description}\n\n{where}".strip(),
        input=trace.input if isinstance(trace.input, dict) else {"value": trace.input},
        output=trace.output,
        trace=trace.trace or [],
        dataset=dataset,
        failure_class=failure_class,
        actor=actor,
        reporter=reporter,
        reported_via=reported_via or f"trace {trace.source.slug}:{trace.client_id}",
    )
    _close_reviews(trace, reporter or actor, ReviewStatus.INCIDENT)
    return incident


@transaction.atomic
def trace_to_case(
    trace: Trace,
    *,
    actor: AbstractBaseUser | None,
    dataset: Dataset,
    failure_class: FailureClass,
    key: str = "",
    contributor: AbstractBaseUser | None = None,
) -> Case:
    """Add the trace to the dataset's monitoring tier as a draft case: its input, with the observed
    output and steps kept as context (never as the expected answer: a person writes that)."""
    if not trace.input:
        raise ValidationError({"input": "The trace has no input to make a case of."})
    case = add_case(
        dataset=dataset,
        key=key or case_key_for(trace),
        failure_class=failure_class,
        input=trace.input,
        tier=Tier.MONITORING,
        source=CaseSource.PRODUCTION,
        context=trace_context(trace),
        actor=actor,
        contributor=contributor,
    )
    _close_reviews(trace, contributor or actor, ReviewStatus.CASE)
    return case


def review_refusal(sample: MonitorSample, user: AbstractBaseUser) -> str | None:
    """Flagged traces are the dataset owner's to settle."""
    if not user.has_perm("monitoring_app.change_monitorsample"):
        return "You may not review flagged traces (the Dataset owner role may)."
    if sample.review != ReviewStatus.WAITING:
        return "This trace is not waiting for review."
    dataset = sample.monitor.dataset
    if not user.is_superuser and (dataset is None or dataset.owner_id != user.pk):
        return "Only an owner of the monitor's dataset reviews its flagged traces."
    return None


def dismiss_review(sample: MonitorSample, *, actor: AbstractBaseUser, note: str = "") -> MonitorSample:
    with transaction.atomic():
        sample = (
            MonitorSample.objects.select_for_update(of=("self",))
            .select_related("monitor__dataset")
            .get(pk=sample.pk)
        )
        refusal = review_refusal(sample, actor)
        if refusal:
            raise PermissionDenied(refusal)
        sample.review = ReviewStatus.DISMISSED
        sample.reviewed_by = actor
        sample.reviewed_at = timezone.now()
        sample.review_note = note
        sample.save(update_fields=["review", "reviewed_by", "reviewed_at", "review_note"])
    return sample
