"""Admin for runs and their results (decided things: read-only)."""

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from evalproject import charts as embed
from evalproject.admin_actions import ReadOnlyInline, confirm_action
from grading_app import charts, services
from grading_app.models import CaseResult, Grade, Run, RunChunk
from grading_app.traces import timeline

# Results that produced something: the population of the run's signal charts, as in its summary.
PRODUCED = {"missing": False, "error": ""}
EARLIER_RUNS = 10  # how many earlier results of the same case a result page offers to compare with


class ReadOnlyAdmin(admin.ModelAdmin):
    """Decided things: visible, never edited or deleted from the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class RunChunkInline(ReadOnlyInline):
    model = RunChunk
    fields = ["index", "status", "attempts", "job_id", "error", "started_at", "finished_at"]


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
    fieldsets = [
        (
            None,
            {
                "fields": [
                    ("dataset", "tier"),
                    ("target_kind", "target"),
                    "candidate",
                    "status",
                    "live_progress",
                    "error",
                    "created_by",
                    ("created_at", "started_at", "finished_at"),
                ]
            },
        ),
        ("Quality", {"fields": ["pass_rate_chart"]}),
        ("Production signals", {"fields": ["latency_chart", "cost_chart"]}),
        ("As recorded", {"classes": ["collapse"], "fields": ["grader_snapshot", "summary"]}),
    ]
    readonly_fields = ["live_progress", "pass_rate_chart", "latency_chart", "cost_chart"]


    def get_urls(self) -> list:
        return [
            path(
                "<int:pk>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="grading_app_run_progress",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="Progress")
    def progress(self, obj: Run) -> str:
        return f"{obj.done_cases}/{obj.total_cases}"

    @admin.display(description="Progress")
    def live_progress(self, obj: Run) -> SafeString:
        context = {
            "progress": _progress(obj),
            "progress_url": reverse("admin:grading_app_run_progress", args=[obj.pk]),
        }
        return render_to_string("admin/grading_app/run_progress.html", context)

    @admin.display(description="Pass rate")
    def pass_rate_chart(self, obj: Run) -> SafeString:
        if not charts.has_pass_rates(obj.summary):
            return embed.empty("No pass rates yet: they appear when the run finishes.")
        return embed.render(charts.pass_rate_by_group(obj.summary), height=420)

    @admin.display(description="Latency and TTFT")
    def latency_chart(self, obj: Run) -> SafeString:
        rows = list(CaseResult.objects.filter(run=obj, **PRODUCED).values_list("latency_ms", "ttft_ms"))
        latencies = [latency for latency, _ in rows if latency is not None]
        ttfts = [ttft for _, ttft in rows if ttft is not None]
        if not latencies and not ttfts:
            return embed.empty("No latency recorded.")
        return embed.render(charts.latency_and_ttft_histogram(latencies, ttfts))

    @admin.display(description="Cost per case")
    def cost_chart(self, obj: Run) -> SafeString:
        costs = list(
            CaseResult.objects.filter(run=obj, cost_usd__isnull=False, **PRODUCED).values_list(
                "cost_usd", flat=True
            )
        )
        if not costs:
            return embed.empty("No cost recorded.")
        return embed.render(charts.cost_per_case(costs), height=260)

    def progress_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        """The run's counts as JSON, polled by the progress bar while the run is queued or running."""
        run = get_object_or_404(Run, pk=pk)
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        return JsonResponse(_progress(run))

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


def _progress(run: Run) -> dict[str, Any]:
    return {
        "status": run.status,
        "done": run.done_cases,
        "total": run.total_cases,
        "errors": run.error_cases,
        "finished": run.is_finished,
    }


@admin.register(CaseResult)
class CaseResultAdmin(ReadOnlyAdmin):
    list_display = ["id", "run", "case", "missing", "error", "latency_ms", "tool_calls"]
    list_filter = ["missing"]
    list_select_related = ["run", "case"]
    raw_id_fields = ["run", "case"]
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": [("run", "case", "case_revision"), "missing", "error", "output", "compare_with"]}),
        ("Trace", {"fields": ["trace_timeline"]}),
        (
            "Signals",
            {
                "fields": [
                    ("latency_ms", "ttft_ms"),
                    ("input_tokens", "output_tokens", "cost_usd"),
                    ("tool_calls", "trace_steps", "retries"),
                    ("refused", "escalated"),
                    "tool_sequence",
                    "created_at",
                ]
            },
        ),
        ("Raw trace", {"classes": ["collapse"], "fields": ["trace"]}),
    ]
    readonly_fields = ["trace_timeline", "compare_with"]

    class Media:
        css = {"all": ("grading_app/trace_timeline.css",)}

    def get_urls(self) -> list:
        return [
            path(
                "<int:pk>/compare/",
                self.admin_site.admin_view(self.compare_view),
                name="grading_app_caseresult_compare",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="Timeline")
    def trace_timeline(self, obj: CaseResult) -> SafeString:
        return render_to_string("admin/grading_app/trace_timeline.html", {"steps": timeline(obj.trace)})

    @admin.display(description="Compare with")
    def compare_with(self, obj: CaseResult) -> str:
        # The same case in earlier runs (a case belongs to one dataset, so these are that
        # dataset's runs): a gate check's baseline run is among them.
        earlier = (
            CaseResult.objects.filter(case_id=obj.case_id, run__created_at__lt=obj.run.created_at)
            .select_related("run")
            .order_by("-run__created_at")[:EARLIER_RUNS]
        )
        url = reverse("admin:grading_app_caseresult_compare", args=[obj.pk])
        links = format_html_join(
            ", ",
            '<a href="{}?baseline_run={}">{}</a> ({}, {})',
            (
                (
                    url,
                    r.run_id,
                    r.run,
                    r.run.get_status_display(),
                    r.run.created_at.strftime("%Y-%m-%d %H:%M"),
                )
                for r in earlier
            ),
        )
        return links or "No earlier run has this case."

    def compare_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The result next to the same case's result in another run (?baseline_run=<id>)."""
        candidate = get_object_or_404(CaseResult.objects.select_related("run", "case"), pk=pk)
        if not self.has_view_permission(request, candidate):
            raise PermissionDenied
        try:
            baseline_run = get_object_or_404(Run, pk=int(request.GET["baseline_run"]))
        except (KeyError, ValueError):
            return HttpResponseBadRequest("Say which run to compare with: ?baseline_run=<run id>.")
        baseline = CaseResult.objects.filter(run=baseline_run, case_id=candidate.case_id).first()
        sides = [_side("baseline", baseline_run, baseline), _side("candidate", candidate.run, candidate)]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Case {candidate.case.key}: {baseline_run} vs {candidate.run}",
            "candidate": candidate,
            "sides": sides,
        }
        return TemplateResponse(request, "admin/grading_app/caseresult_compare.html", context)


def _side(role: str, run: Run, result: CaseResult | None) -> dict[str, Any]:
    grades = list(result.grades.select_related("grader").order_by("grader__slug")) if result else []
    return {
        "role": role,
        "run": run,
        "result": result,
        "grades": grades,
        "steps": timeline(result.trace) if result else [],
    }


@admin.register(Grade)
class GradeAdmin(ReadOnlyAdmin):
    list_display = ["id", "case_result", "grader", "passed", "score", "error"]
    list_filter = ["passed", "grader"]
    list_select_related = ["case_result", "grader"]
    raw_id_fields = ["case_result"]
    show_full_result_count = False
