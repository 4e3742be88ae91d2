"""Admin for runs and their results (decided things: read-only)."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from evalproject.admin_actions import confirm_action
from grading_app import services
from grading_app.models import CaseResult, Grade, Run, RunChunk


class ReadOnlyAdmin(admin.ModelAdmin):
    """Decided things: visible, never edited or deleted from the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class RunChunkInline(admin.TabularInline):
    model = RunChunk
    fields = ["index", "status", "attempts", "job_id", "error", "started_at", "finished_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "candidate",
        "dataset",
        "status",
        "progress",
        "error_cases",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "dataset"]
    list_select_related = ["dataset"]
    search_fields = ["candidate"]
    inlines = [RunChunkInline]
    show_full_result_count = False
    actions = ["cancel"]

    @admin.display(description="Progress")
    def progress(self, obj: Run) -> str:
        return f"{obj.done_cases}/{obj.total_cases}"

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("grading_app.change_run")

    @admin.action(description="Cancel selected runs", permissions=["cancel"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Run]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Cancel runs",
            verb="Cancel runs",
            explanation="Cancelled runs stop; their checks become inconclusive, never a pass.",
            perform=lambda run, reason: services.cancel_run(run, actor=request.user, reason=reason),
        )


@admin.register(CaseResult)
class CaseResultAdmin(ReadOnlyAdmin):
    list_display = ["id", "run", "case", "missing", "error", "latency_ms", "tool_calls"]
    list_filter = ["missing"]
    list_select_related = ["run", "case"]
    raw_id_fields = ["run", "case"]
    show_full_result_count = False


@admin.register(Grade)
class GradeAdmin(ReadOnlyAdmin):
    list_display = ["id", "case_result", "grader", "passed", "score", "error"]
    list_filter = ["passed", "grader"]
    list_select_related = ["case_result", "grader"]
    raw_id_fields = ["case_result"]
    show_full_result_count = False
