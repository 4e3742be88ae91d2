"""Admin for gates, rules, checks (read-only verdicts) and tokens (secret shown once)."""

from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from evalproject.admin_actions import GovernedAdmin, ReadOnlyInline, confirm_action
from evalproject.charts import empty, render
from gates_app import charts, services, tokens
from gates_app.choices import CheckStatus
from gates_app.forms import TokenIssueForm
from gates_app.models import Check, CheckDecision, DeployToken, Gate, GateRule

HISTORY_CHECKS = 200  # how many of a gate's latest decided checks its charts draw


def owns(request: HttpRequest, gate: Gate | None) -> bool:
    """Only an owner (or a superuser) says what a gate's rules mean."""
    return gate is None or request.user.is_superuser or gate.is_owner(request.user)


class GateRuleInline(admin.TabularInline):
    model = GateRule

    def has_change_permission(self, request: HttpRequest, obj: Gate | None = None) -> bool:
        return owns(request, obj) and super().has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Gate | None = None) -> bool:
        return owns(request, obj) and super().has_add_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Gate | None = None) -> bool:
        return owns(request, obj) and super().has_delete_permission(request, obj)

    fields = [
        "position",
        "name",
        "metric",
        "grader",
        "scope",
        "mode",
        "threshold",
        "direction",
        "margin",
        "strict",
        "decide_on",
        "severity",
    ]
    extra = 0


@admin.register(Gate)
class GateAdmin(GovernedAdmin):
    list_display = ["slug", "name", "owner", "dataset", "active"]
    list_select_related = ["owner", "dataset"]
    search_fields = ["slug", "name"]
    raw_id_fields = ["owner", "baseline_check"]
    filter_horizontal = ["co_owners", "approvers"]
    inlines = [GateRuleInline]
    chart_fields = ["verdict_history_chart", "rule_trends_chart"]


    def has_change_permission(self, request: HttpRequest, obj: Gate | None = None) -> bool:
        return owns(request, obj) and super().has_change_permission(request, obj)

    def get_form(self, request: HttpRequest, obj: Gate | None = None, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, **kwargs)
        if request.user.is_superuser or obj is not None:
            return form_class

        class OwnedGateForm(form_class):
            def clean(self) -> dict[str, Any]:
                data = super().clean()
                # A gate makes its owners answer for releases: nobody creates one in other
                # people's names only (superusers excepted).
                owners = {
                    getattr(data.get("owner"), "pk", None),
                    *(u.pk for u in data.get("co_owners") or []),
                }
                if request.user.pk not in owners:
                    self.add_error("owner", "Be an owner (owner or co-owner) of the gate you create.")
                return data

        return OwnedGateForm

    def get_readonly_fields(self, request: HttpRequest, obj: Gate | None = None) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))
        # Anyone who may view the gate sees its history (the page is read-only for non-owners),
        # as long as they may see checks at all; nothing to draw on the add page.
        if obj is not None and request.user.has_perm("gates_app.view_check"):
            readonly += self.chart_fields
        return readonly

    def _recent_checks(self, obj: Gate) -> list[tuple[datetime, str, str, list[dict[str, Any]]]]:
        """The latest decided checks, oldest first, read once for both charts of the page."""
        if not hasattr(obj, "_chart_checks"):
            rows = (
                Check.objects.filter(gate=obj, status=CheckStatus.DONE)
                .order_by("-created_at", "-pk")
                .values_list("created_at", "verdict", "candidate", "rule_results")[:HISTORY_CHECKS]
            )
            obj._chart_checks = list(reversed(rows))
        return obj._chart_checks

    @admin.display(description="Verdict history")
    def verdict_history_chart(self, obj: Gate) -> SafeString:
        checks = self._recent_checks(obj)
        if not checks:
            return empty("No decided checks yet.")
        return render(charts.verdict_history((c[0], c[1], c[2]) for c in checks))

    @admin.display(description="Rule trends")
    def rule_trends_chart(self, obj: Gate) -> SafeString:
        checks = self._recent_checks(obj)
        points = [(c[0], r["name"], r.get("value")) for c in checks for r in c[3]]
        if not points:
            return empty("No rule results yet.")
        # The latest check's metric names the unit, should a rule have changed metric since.
        metric_of = {r["name"]: r["metric"] for c in checks for r in c[3]}
        return render(charts.rule_trends(points, metric_of=metric_of))


@admin.register(GateRule)
class GateRuleAdmin(GovernedAdmin):
    list_display = ["name", "gate", "metric", "severity", "mode", "threshold"]
    list_filter = ["gate", "severity", "metric"]
    list_select_related = ["gate"]

    def has_change_permission(self, request: HttpRequest, obj: GateRule | None = None) -> bool:
        return owns(request, obj.gate if obj else None) and super().has_change_permission(request, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        # A rule may only be added to (or moved onto) a gate the user owns.
        if db_field.name == "gate" and not request.user.is_superuser:
            kwargs["queryset"] = Gate.objects.owned_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class CheckDecisionInline(ReadOnlyInline):
    model = CheckDecision
    fields = ["kind", "actor", "reason", "created_at"]


@admin.register(Check)
class CheckAdmin(admin.ModelAdmin):
    list_display = ["id", "gate", "candidate", "status", "verdict", "release_allowed", "created_at"]
    list_filter = ["gate", "verdict", "status", "release_allowed"]
    list_select_related = ["gate"]
    search_fields = ["candidate"]
    actions = ["approve", "override"]
    readonly_fields = [
        "gate",
        "candidate",
        "run",
        "status",
        "verdict",
        "release_allowed",
        "rule_table",
        "rule_chart",
        "trace_deltas",
        "trace_delta_chart",
        "baseline",
        "metadata",
        "idempotency_key",
        "requested_by_token",
        "requested_by_user",
        "created_at",
        "decided_at",
    ]
    exclude = ["request_fingerprint", "rule_results"]
    inlines = [CheckDecisionInline]
    show_full_result_count = False


    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Rules, charted")
    def rule_chart(self, obj: Check) -> SafeString:
        if not obj.rule_results:
            return empty("No rule results yet: the check is not decided.")
        # Absolute rules carry no baseline value of their own: the baseline check's row says it.
        earlier = Check.objects.filter(pk=obj.baseline_id).values_list("rule_results", flat=True).first()
        return render(charts.rule_comparison(obj.rule_results, baseline_results=earlier))

    @admin.display(description="Trace deltas, charted")
    def trace_delta_chart(self, obj: Check) -> SafeString:
        if not obj.trace_deltas:
            return empty("No trace deltas: the check has no baseline, or is not decided.")
        return render(charts.trace_deltas(obj.trace_deltas))

    @admin.display(description="Rules")
    def rule_table(self, obj: Check) -> str:
        def fmt(value: Any) -> str:
            if isinstance(value, float):
                return f"{value:.4g}"
            if isinstance(value, list):
                return "[" + ", ".join(fmt(v) for v in value) + "]"
            return "-" if value is None else str(value)

        rows = (
            (
                r["name"],
                r["severity"],
                r["metric"],
                fmt(r["value"]),
                fmt(r.get("baseline")),
                fmt(r["threshold"]),
                fmt(r["interval"]),
                r["n"],
                r["outcome"].upper(),
                r.get("note", ""),
            )
            for r in obj.rule_results
        )
        header = (
            "rule",
            "severity",
            "metric",
            "value",
            "baseline",
            "threshold",
            "95% interval",
            "n",
            "outcome",
            "note",
        )
        return format_html(
            '<table class="rule-table"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
            format_html_join("", "<th>{}</th>", ((h,) for h in header)),
            format_html_join("", "<tr>" + "<td>{}</td>" * len(header) + "</tr>", rows),
        )

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

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # a verdict is decided once; approvals and overrides are actions with a reason

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(DeployToken)
class DeployTokenAdmin(admin.ModelAdmin):
    """Tokens: everyone sees and revokes only their own personal tokens and the deploy tokens
    of gates they own (superusers: all). Issuing goes through TokenIssueForm and the service."""

    list_display = ["name", "prefix", "user", "gate_list", "scopes", "created_by", "expires_at", "revoked_at"]
    list_select_related = ["user", "created_by"]
    filter_horizontal = ["gates"]
    actions = ["revoke"]
    readonly = [
        "name",
        "prefix",
        "user",
        "gates",
        "scopes",
        "note",
        "created_by",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
        "revoke_reason",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeployToken]:
        return (
            tokens.tokens_visible_to(request.user)
            .select_related("user", "created_by")
            .prefetch_related("gates")
        )

    def get_form(self, request: HttpRequest, obj: DeployToken | None = None, **kwargs: Any) -> Any:
        if obj is not None:
            return super().get_form(request, obj, **kwargs)
        form_class = TokenIssueForm

        class IssueForm(form_class):
            def __init__(self, *args: Any, **inner: Any) -> None:
                super().__init__(*args, actor=request.user, **inner)

        return IssueForm

    def get_fieldsets(self, request: HttpRequest, obj: DeployToken | None = None) -> list:
        if obj is not None:
            return [(None, {"fields": self.readonly})]
        fields = ["kind", "name", "gates", "scope_list", "expires_in_days", "note"]
        if request.user.is_superuser:
            fields.insert(1, "for_user")
        return [(None, {"fields": fields})]

    def get_readonly_fields(self, request: HttpRequest, obj: DeployToken | None = None) -> list[str]:
        return self.readonly if obj else []

    def has_change_permission(self, request: HttpRequest, obj: DeployToken | None = None) -> bool:
        return False  # a token is issued once and revoked with a reason; never edited

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: DeployToken, form: Any, change: bool) -> None:
        # The secret exists only here: hashed in the row, shown to the creator once.
        token, secret = form.issue()
        obj.pk = token.pk
        messages.warning(request, f"Copy this token now; it will not be shown again: {secret}")

    def save_related(self, request: HttpRequest, form: object, formsets: object, change: bool) -> None:
        pass  # the service set the gates

    @admin.display(description="Gates")
    def gate_list(self, obj: DeployToken) -> str:
        return ", ".join(g.slug for g in obj.gates.all()) or "-"

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[DeployToken]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Revoke tokens",
            verb="Revoke",
            reason_required=True,
            explanation="A revoked token stops working at once. The reason is recorded in the audit log.",
            perform=lambda token, reason: tokens.revoke_token(token, actor=request.user, reason=reason),
        )
