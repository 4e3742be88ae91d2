"""What waits for a person: the cases they may audit, the versions they may sign off, the
checks they may approve or should look at, incidents to triage, results to label.

Each section costs one or two queries whatever its size, and counts exactly what the
services would let this person do now (four eyes included); gates_app holds it because it is
the one app allowed to read every other.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from datasets_app.choices import CaseStatus, IncidentStatus, RequestStatus, Tier
from datasets_app.models import Case, Incident, PinnedCaseRequest
from gates_app.choices import CheckStatus, DecisionKind, Verdict
from gates_app.models import Check, CheckDecision, Gate
from grading_app.choices import RubricState
from grading_app.models import Rubric, RubricVersion
from grading_app.services.labels import review_queue
from monitoring_app.choices import ReviewStatus
from monitoring_app.models import Alert, MonitorSample

SHOWN = 10
RECENT = timedelta(days=30)


@dataclass
class Item:
    label: str
    url: str
    detail: str = ""


@dataclass
class Section:
    key: str
    title: str
    count: int
    items: list[Item] = field(default_factory=list)
    more_url: str = ""


def _change(model: str, pk: int) -> str:
    return reverse(f"admin:{model}_change", args=[pk])


def cases_to_audit(user: Any) -> Section | None:
    if not user.has_perm("datasets_app.audit_case"):
        return None
    rows = (
        Case.objects.filter(status=CaseStatus.IN_REVIEW)
        .exclude(contributed_by=user)
        .order_by("updated_at", "pk")
        .values_list("pk", "key", "dataset__slug", "tier", "editors_since_audit", "edited_by_id")
    )
    # Four eyes, as datasets_app.services.audit_refusal applies it: for a trusted case, nobody
    # who changed it since its last audit. (The editors are a JSON list: filtered here.)
    mine = [r for r in rows if r[3] != Tier.TRUSTED or (user.pk not in (r[4] or []) and r[5] != user.pk)]
    items = [
        Item(key, _change("datasets_app_case", pk), f"{slug}, {tier}") for pk, key, slug, tier, _, _ in mine
    ]
    more = reverse("admin:datasets_app_case_changelist") + "?status__exact=in_review"
    return Section("audit", "Cases in review you may audit", len(mine), items[:SHOWN], more)


def cases_returned(user: Any) -> Section | None:
    if not user.has_perm("datasets_app.change_case"):
        return None
    rows = list(
        Case.objects.filter(status=CaseStatus.DRAFT)
        .exclude(review_note="")
        .filter(Q(contributed_by=user) | Q(edited_by=user))
        .order_by("-updated_at")
        .values_list("pk", "key", "review_note")
    )
    items = [Item(key, _change("datasets_app_case", pk), note) for pk, key, note in rows]
    return Section("returned", "Your cases returned to you with a note", len(rows), items[:SHOWN])


def versions_to_sign_off(user: Any) -> Section | None:
    owned = Rubric.objects.filter(Q(owner=user) | Q(co_owners=user)).values("pk")
    rows = list(
        RubricVersion.objects.filter(state=RubricState.SUBMITTED, rubric__in=owned)
        .exclude(author=user)
        .select_related("rubric", "author")
        .order_by("created_at")
    )
    if not rows and not user.has_perm("grading_app.change_rubricversion"):
        return None
    items = [Item(str(v), _change("grading_app_rubricversion", v.pk), f"by {v.author}") for v in rows]
    return Section("sign_off", "Rubric versions you may sign off", len(rows), items[:SHOWN])


def _my_gates(user: Any) -> Any:
    return Gate.objects.owned_by(user).values("pk")


def warns_to_approve(user: Any) -> Section | None:
    if not user.has_perm("gates_app.view_check"):
        return None
    gates = Gate.objects.filter(Q(pk__in=_my_gates(user)) | Q(approvers=user)).values("pk")
    mine = CheckDecision.objects.filter(gate_check=OuterRef("pk"), actor=user, kind=DecisionKind.APPROVE)
    rows = list(
        Check.objects.filter(
            gate__in=gates,
            status=CheckStatus.DONE,
            verdict=Verdict.WARN,
            release_allowed=False,
            gate__warnings_need_approval=True,
        )
        .exclude(Exists(mine))
        .exclude(requested_by_user=user)
        .exclude(requested_by_token__created_by=user)
        .exclude(requested_by_token__user=user)
        .select_related("gate")
        .order_by("-decided_at")
    )
    items = [
        Item(f"{c.gate.slug}: {c.candidate}", _change("gates_app_check", c.pk), f"check {c.pk}") for c in rows
    ]
    more = reverse("admin:gates_app_check_changelist") + "?verdict__exact=warn&release_allowed__exact=0"
    return Section("approve", "Warn verdicts you may approve", len(rows), items[:SHOWN], more)


def blocked_checks(user: Any) -> Section | None:
    """The latest fail or inconclusive check of each candidate of the gates this person owns."""
    if not user.has_perm("gates_app.view_check") or not Gate.objects.owned_by(user).exists():
        return None
    newer = Check.objects.filter(
        gate=OuterRef("gate"), candidate=OuterRef("candidate"), created_at__gt=OuterRef("created_at")
    )
    rows = list(
        Check.objects.filter(
            gate__in=_my_gates(user),
            status=CheckStatus.DONE,
            verdict__in=[Verdict.FAIL, Verdict.INCONCLUSIVE],
            release_allowed=False,
            decided_at__gte=timezone.now() - RECENT,
        )
        .exclude(Exists(newer))
        .select_related("gate")
        .order_by("-decided_at")
    )
    items = [
        Item(f"{c.gate.slug}: {c.candidate}", _change("gates_app_check", c.pk), c.get_verdict_display())
        for c in rows
    ]
    return Section("blocked", "Failed or inconclusive checks of your gates", len(rows), items[:SHOWN])


def incidents_to_triage(user: Any) -> Section | None:
    if not user.has_perm("datasets_app.triage_incident"):
        return None
    rows = list(
        Incident.objects.filter(status__in=[IncidentStatus.NEW, IncidentStatus.TRIAGED])
        .order_by("created_at")
        .values_list("pk", "title", "severity", "status")
    )
    items = [
        Item(title, _change("datasets_app_incident", pk), f"{severity}, {status}")
        for pk, title, severity, status in rows
    ]
    more = reverse("admin:datasets_app_incident_changelist")
    return Section("incidents", "Incidents to triage", len(rows), items[:SHOWN], more)


def pinned_requests(user: Any) -> Section | None:
    owners_datasets = Gate.objects.owned_by(user).values("dataset_id")
    scope = Q() if user.has_perm("datasets_app.retire_case") else Q(case__dataset_id__in=owners_datasets)
    rows = list(
        PinnedCaseRequest.objects.filter(scope, status=RequestStatus.OPEN)
        .exclude(requested_by=user)
        .select_related("case", "requested_by")
        .order_by("requested_at")
    )
    if not rows and not user.has_perm("datasets_app.view_pinnedcaserequest"):
        return None
    items = [
        Item(
            f"{r.get_change_display()}: {r.case.key}",
            _change("datasets_app_pinnedcaserequest", r.pk),
            f"asked by {r.requested_by}",
        )
        for r in rows
    ]
    return Section("pinned", "Pinned-case requests waiting for a second person", len(rows), items[:SHOWN])


def results_to_label(user: Any) -> Section | None:
    if not user.has_perm("grading_app.add_humanlabel"):
        return None
    count = review_queue(user).order_by().count()
    url = reverse("admin:grading_app_humanlabel_review")
    items = [Item("Open the review queue", url)] if count else []
    return Section("label", "Judged results you have not labelled", count, items)


def alerts_open(user: Any) -> Section | None:
    """Alerts of the monitors this person owns that nobody acknowledged yet."""
    if not user.has_perm("monitoring_app.view_alert"):
        return None
    rows = list(
        Alert.objects.filter(monitor__owner=user, acknowledged_at__isnull=True)
        .order_by("-window_start")
        .values_list("pk", "rule__name", "monitor__slug", "window_start")
    )
    items = [
        Item(f"{monitor}: {rule}", _change("monitoring_app_alert", pk), f"{start:%Y-%m-%d %H:%M}")
        for pk, rule, monitor, start in rows
    ]
    more = reverse("admin:monitoring_app_alert_changelist") + "?acknowledged_at__isempty=1"
    return Section("alerts", "Drift alerts of your monitors", len(rows), items[:SHOWN], more)


def traces_to_review(user: Any) -> Section | None:
    """Production traces that failed a monitor's grader or got negative feedback, for an owner
    of the monitor's dataset."""
    if not user.has_perm("monitoring_app.change_monitorsample"):
        return None
    queue = MonitorSample.objects.filter(review=ReviewStatus.WAITING, monitor__dataset__owner=user)
    count = queue.count()
    rows = queue.order_by("-time").values_list("pk", "trace__client_id", "monitor__slug")[:SHOWN]
    items = [
        Item(client_id, _change("monitoring_app_monitorsample", pk), monitor)
        for pk, client_id, monitor in rows
    ]
    more = reverse("admin:monitoring_app_monitorsample_changelist") + "?review__exact=waiting"
    return Section("traces", "Production traces to review", count, items, more)


SECTIONS = (
    cases_to_audit,
    cases_returned,
    versions_to_sign_off,
    warns_to_approve,
    blocked_checks,
    pinned_requests,
    incidents_to_triage,
    results_to_label,
    alerts_open,
    traces_to_review,
)


def waiting_for(user: Any) -> list[Section]:
    """Every section this person has a stake in, in a fixed order (empty ones included)."""
    return [section for build in SECTIONS if (section := build(user)) is not None]
