"""Admin for datasets, failure classes and cases (thin: lifecycle actions call services)."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from datasets_app import services
from datasets_app.models import Case, Dataset, FailureClass


@admin.register(FailureClass)
class FailureClassAdmin(SimpleHistoryAdmin):
    list_display = ["slug", "name", "description"]
    search_fields = ["slug", "name", "description"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Dataset)
class DatasetAdmin(SimpleHistoryAdmin):
    list_display = ["slug", "name", "owner", "updated_at"]
    list_select_related = ["owner"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    raw_id_fields = ["owner"]


def _each(request: HttpRequest, queryset: QuerySet[Case], verb: str, action: object) -> None:
    done = 0
    for case in queryset:
        try:
            action(case)
            done += 1
        except (ValidationError, PermissionDenied) as exc:
            messages.error(request, f"{case.key}: {'; '.join(getattr(exc, 'messages', [str(exc)]))}")
    if done:
        messages.success(request, f"{verb} {done} case(s).")


@admin.register(Case)
class CaseAdmin(SimpleHistoryAdmin):
    list_display = [
        "key",
        "dataset",
        "tier",
        "status",
        "failure_class",
        "risk",
        "pinned",
        "revision",
        "updated_at",
    ]
    list_filter = ["dataset", "tier", "status", "failure_class", "risk", "pinned", "source"]
    list_select_related = ["dataset", "failure_class"]
    search_fields = ["key", "tags"]
    raw_id_fields = ["contributed_by", "audited_by"]
    readonly_fields = [
        "status",
        "revision",
        "contributed_by",
        "audited_by",
        "audited_at",
        "created_at",
        "updated_at",
    ]
    show_full_result_count = False
    actions = ["submit_for_review", "audit_and_activate", "retire"]

    def save_model(self, request: HttpRequest, obj: Case, form: object, change: bool) -> None:
        if not change:
            obj.contributed_by = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Submit selected drafts for review")
    def submit_for_review(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        _each(request, queryset, "Submitted", lambda c: services.submit_case(c, actor=request.user))

    @admin.action(description="Audit and activate selected cases")
    def audit_and_activate(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        _each(request, queryset, "Activated", lambda c: services.audit_case(c, actor=request.user))

    @admin.action(description="Retire selected cases")
    def retire(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        _each(request, queryset, "Retired", lambda c: services.retire_case(c, actor=request.user))

    def has_delete_permission(self, request: HttpRequest, obj: Case | None = None) -> bool:
        return False  # governed data is retired, never deleted
