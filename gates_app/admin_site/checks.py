"""Admin for checks: read-only verdicts, legible, with the decisions each person may take."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from audit_app.services import events_for
from evalproject.admin_actions import confirm_action
from evalproject.charts import empty, render
from evalproject.decisions import Decision, DecisionsMixin, actions_for
from gates_app import charts, services
from gates_app.admin_site import check_page
from gates_app.models import Check, Gate


def _approve(user: Any, check: Check, reason: str) -> Any:
    return services.approve_check(check, actor=user, reason=reason)


def _override(user: Any, check: Check, reason: str) -> Any:
    return services.override_check(check, actor=user, reason=reason)


def _cancel(user: Any, check: Check, reason: str) -> Any:
    return services.cancel_check(check, actor=user, reason=reason)


DECISIONS = [
    Decision(
        "approve",
        "Approve this warn",
        _approve,
        why=lambda user, check: services.approval_refusal(check, user),
        reason_required=True,
        explanation="Approving a warn verdict acknowledges the budgets it missed; the release is "
        "allowed once the gate's required number of people have approved. Never the requester.",
    ),
    Decision(
        "override",
        "Override this verdict",
        _override,
        why=lambda user, check: services.override_refusal(check, user),
        reason_required=True,
        danger=True,
        explanation="An override releases a failed or inconclusive candidate. Only an owner of the "
        "gate may; the reason is recorded forever in the approval trail and the audit log.",
    ),
    Decision(
        "cancel",
        "Cancel this check",
        _cancel,
        why=lambda user, check: services.cancel_refusal(check, user),
        explanation="Its run stops; the verdict becomes inconclusive, never a pass.",
    ),
]


def _gate_roles(request: HttpRequest) -> tuple[bool, bool]:
    """(owns some gate, may approve on some gate), asked once per request: a changelist asks
    for its actions three times (the action menu, its choices, the checkbox column)."""
    if not hasattr(request, "_evalgate_gate_roles"):
        owns = Gate.objects.owned_by(request.user).exists()
        approves = owns or Gate.objects.filter(approvers=request.user).exists()
        request._evalgate_gate_roles = (owns, approves)
    return request._evalgate_gate_roles


@admin.register(Check)
class CheckAdmin(DecisionsMixin, admin.ModelAdmin):
    list_display = ["id", "gate", "candidate", "status", "verdict", "release_allowed", "created_at"]
    list_filter = ["gate", "verdict", "status", "release_allowed"]
    list_select_related = ["gate"]
    search_fields = ["candidate"]
    actions = ["approve", "override"]
    summary = [
        ("gate", "candidate"),
        ("verdict_badge", "release_allowed", "status"),
        ("run", "baseline"),
        ("requested_by", "created_at", "decided_at"),
    ]

    def get_fieldsets(self, request: HttpRequest, obj: Check | None = None) -> list:
        """The tables go in fieldset descriptions, as wide as the page (a field's value sits
        beside its label, in a third of the width)."""
        if obj is None:
            return [(None, {"fields": self.summary})]
        return [
            (None, {"fields": self.summary}),
            ("Rules", {"description": check_page.rule_table(obj) + self.rule_chart(obj), "fields": []}),
            ("Approval trail", {"description": check_page.approval_trail(obj), "fields": []}),
            ("Missing or errored cases", {"description": check_page.missing_cases(obj), "fields": []}),
            (
                "Trace deltas against the baseline",
                {
                    "description": check_page.trace_delta_table(obj)
                    + (self.trace_delta_chart(obj) if obj.trace_deltas else ""),
                    "fields": [],
                },
            ),
            ("Request", {"classes": ["collapse"], "fields": ["metadata", "idempotency_key"]}),
        ]

    readonly_fields = [
        "gate",
        "candidate",
        "verdict_badge",
        "release_allowed",
        "status",
        "run",
        "baseline",
        "requested_by",
        "created_at",
        "decided_at",
        "metadata",
        "idempotency_key",
    ]
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Check]:
        return (
            super()
            .get_queryset(request)
            .select_related("gate", "run", "requested_by_token", "requested_by_user")
            .prefetch_related("decisions", "gate__co_owners")
        )

    def get_decisions(self, request: HttpRequest, obj: Check) -> list[Decision]:
        return DECISIONS

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Approving is for approvers and owners of some gate, overriding for owners only.
        owns, approves = _gate_roles(request)
        allowed = {"approve": lambda user: approves, "override": lambda user: owns}
        return actions_for(super().get_actions(request), allowed, request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # a verdict is decided once; approvals and overrides are decisions with a reason

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        """A check's history is its audit events: requested, decided, approved, overridden."""
        check = self.get_object(request, object_id)
        if check is None or not self.has_view_permission(request, check):
            return super().history_view(request, object_id, extra_context)
        context = {
            **self.admin_site.each_context(request),
            "title": f"History of {check}",
            "object": check,
            "opts": self.model._meta,
            "events": events_for(check).order_by("id"),
        }
        return TemplateResponse(request, "admin/gates_app/check_history.html", context)

    @admin.display(description="Verdict")
    def verdict_badge(self, obj: Check) -> SafeString:
        return format_html(
            '<span class="verdict verdict-{}">{}</span>', obj.verdict, obj.get_verdict_display()
        )

    @admin.display(description="Requested by")
    def requested_by(self, obj: Check) -> str:
        token = obj.requested_by_token
        if token is not None:
            return f"deploy token {token.name} ({token.prefix}…)"
        return obj.requested_by_user.get_username() if obj.requested_by_user else "-"

    @admin.display(description="Rules, charted")
    def rule_chart(self, obj: Check) -> SafeString:
        if not obj.rule_results:
            return empty("No rule results yet: the check is not decided.")
        # Absolute rules carry no baseline value of their own: the baseline check's row says it.
        earlier = None
        if obj.baseline_id is not None:
            earlier = Check.objects.filter(pk=obj.baseline_id).values_list("rule_results", flat=True).first()
        return render(charts.rule_comparison(obj.rule_results, baseline_results=earlier))

    @admin.display(description="Trace deltas, charted")
    def trace_delta_chart(self, obj: Check) -> SafeString:
        if not obj.trace_deltas:
            return empty("No trace deltas: the check has no baseline, or is not decided.")
        return render(charts.trace_deltas(obj.trace_deltas))

    @admin.action(description="Approve (acknowledge) selected warn verdicts")
    def approve(self, request: HttpRequest, queryset: QuerySet[Check]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Approve warn verdicts",
            verb="Approve",
            reason_required=True,
            explanation="Approving a warn verdict allows the release. Approvers and the gate owner may.",
            perform=lambda check, reason: services.approve_check(check, actor=request.user, reason=reason),
        )

    @admin.action(description="Override selected fail or inconclusive verdicts (owner)")
    def override(self, request: HttpRequest, queryset: QuerySet[Check]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Override verdicts",
            verb="Override",
            reason_required=True,
            explanation="An override releases a failed or inconclusive candidate. Only the gate owner may; "
            "the reason is recorded forever.",
            perform=lambda check, reason: services.override_check(check, actor=request.user, reason=reason),
        )
