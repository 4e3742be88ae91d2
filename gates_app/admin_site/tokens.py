"""Admin for tokens: issued through the service's rules, the secret shown once, revoked with a reason."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from evalproject.admin_actions import confirm_action
from gates_app import tokens
from gates_app.forms import TokenIssueForm
from gates_app.models import DeployToken


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
