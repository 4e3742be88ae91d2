"""Admin for gates, rules, checks (read-only verdicts) and tokens (secret shown once)."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from evalproject.admin_actions import GovernedAdmin, confirm_action
from gates_app import services, tokens
from gates_app.models import Check, CheckDecision, DeployToken, Gate, GateRule


def owns(request: HttpRequest, gate: Gate | None) -> bool:
    """Only the owner (or a superuser) says what a gate's rules mean."""
    return gate is None or request.user.is_superuser or gate.owner_id == request.user.pk


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
    filter_horizontal = ["approvers"]
    inlines = [GateRuleInline]

    def has_change_permission(self, request: HttpRequest, obj: Gate | None = None) -> bool:
        return owns(request, obj) and super().has_change_permission(request, obj)


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
            kwargs["queryset"] = Gate.objects.filter(owner=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class CheckDecisionInline(admin.TabularInline):
    model = CheckDecision
    fields = ["kind", "actor", "reason", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


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
        "trace_deltas",
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

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(DeployToken)
class DeployTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "user", "scopes", "expires_at", "revoked_at", "last_used_at"]
    list_select_related = ["user"]
    fields = ["name", "user", "gates", "scopes"]
    filter_horizontal = ["gates"]
    raw_id_fields = ["user"]
    actions = ["revoke"]

    def get_readonly_fields(self, request: HttpRequest, obj: DeployToken | None = None) -> list[str]:
        return ["name", "user", "gates", "scopes", "prefix", "created_at", "last_used_at"] if obj else []

    def save_model(self, request: HttpRequest, obj: DeployToken, form: object, change: bool) -> None:
        if change:
            return super().save_model(request, obj, form, change)
        # The secret exists only here: hashed in the row, shown to the creator once.
        token, secret = tokens.create_token(
            name=obj.name,
            gates=list(form.cleaned_data.get("gates") or []),
            scopes=obj.scopes or None,
            user=obj.user,
            actor=request.user,
        )
        obj.pk = token.pk
        messages.warning(request, f"Copy this token now; it will not be shown again: {secret}")

    def save_related(self, request: HttpRequest, form: object, formsets: object, change: bool) -> None:
        if change:
            super().save_related(request, form, formsets, change)

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: object) -> None:
        for token in queryset:
            tokens.revoke_token(token, actor=request.user)
        messages.success(request, "Revoked.")

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
