"""The audit log in the admin (read-only, filterable by actor, action and object), and user
accounts that can be deactivated but not deleted."""

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from audit_app.models import AuditEvent

User = get_user_model()


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "who", "action", "object_link", "reason_short"]
    list_filter = ["action", "object_type", ("actor", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["actor_username", "object_id", "object_repr", "reason"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_per_page = 100
    fields = [
        "created_at",
        "who_named",
        "actor_username",
        "actor",
        "action",
        "object_type",
        "object_id",
        "object_link",
        "reason",
        "details",
        "via",
        "prev_hash",
        "hash",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Who", ordering="actor_username")
    def who(self, obj: AuditEvent) -> str:
        """The actor; for an act through a deploy token (no user acts), the token and its issuer,
        whom the services treat as the requester, rather than a bare "-"."""
        return _who(obj, name_issuer=False)

    @admin.display(description="Who")
    def who_named(self, obj: AuditEvent) -> str:
        return _who(obj, name_issuer=True)  # one event's page: the issuer's name is one query

    @admin.display(description="Object")
    def object_link(self, obj: AuditEvent) -> str:
        if not obj.object_type:
            return "-"
        label = obj.object_repr or f"{obj.object_type} {obj.object_id}"
        app_label, _, model = obj.object_type.partition(".")
        try:
            url = reverse(f"admin:{app_label}_{model}_change", args=[obj.object_id])
        except NoReverseMatch:
            return label
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description="Reason")
    def reason_short(self, obj: AuditEvent) -> str:
        return obj.reason if len(obj.reason) <= 80 else obj.reason[:77] + "..."


def _who(event: AuditEvent, *, name_issuer: bool) -> str:
    if event.actor_username:
        return event.actor_username
    token = event.details.get("token") if isinstance(event.details, dict) else None
    if not isinstance(token, dict):
        return "the system"
    issuer = token.get("created_by")
    name = User.objects.filter(pk=issuer).values_list("username", flat=True).first() if name_issuer else None
    return f"deploy token {token.get('name')} ({token.get('prefix')}), issued by {name or f'user {issuer}'}"


admin.site.unregister(User)


@admin.register(User)
class AccountAdmin(UserAdmin):
    """People are deactivated, never deleted: what they did stays attributed to them."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
