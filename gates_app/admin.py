"""Admin for gates, rules, checks (read-only verdicts) and tokens (secret shown once)."""

from django.contrib import admin, messages
from django.http import HttpRequest

from evalproject.admin_actions import GovernedAdmin
from gates_app import tokens
from gates_app.models import Check, CheckDecision, DeployToken, Gate, GateRule


class GateRuleInline(admin.TabularInline):
    model = GateRule
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


@admin.register(GateRule)
class GateRuleAdmin(GovernedAdmin):
    list_display = ["name", "gate", "metric", "severity", "mode", "threshold"]
    list_filter = ["gate", "severity", "metric"]
    list_select_related = ["gate"]


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
    readonly_fields = [
        "gate",
        "candidate",
        "run",
        "status",
        "verdict",
        "release_allowed",
        "rule_results",
        "trace_deltas",
        "baseline",
        "metadata",
        "idempotency_key",
        "requested_by_token",
        "requested_by_user",
        "created_at",
        "decided_at",
    ]
    exclude = ["request_fingerprint"]
    inlines = [CheckDecisionInline]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

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
