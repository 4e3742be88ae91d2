"""Admin for runs and their grades (decided things: read-only); case results are in results.py."""

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from evalproject import charts as embed
from evalproject.admin_actions import ReadOnlyInline, confirm_action
from grading_app import charts, services
from grading_app.admin_site.outcomes import Outcome, outcome_counts
from grading_app.models import CaseResult, Grade, Run, RunChunk
from grading_app.results import iter_case_rows

# Results that produced something: the population of the run's signal charts, as in its summary.
PRODUCED = {"missing": False, "error": ""}


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
                    ("candidate", "trials"),
                    "status",
                    "live_progress",
                    "case_results",
                    "repeated_trials",
                    "evaluation_cost",
                    "error",
                    "created_by",
                    ("created_at", "started_at", "finished_at"),
                ]
            },
        ),
        ("Quality", {"fields": ["pass_rate_chart"]}),
        ("Production signals", {"fields": ["latency_chart", "cost_chart"]}),
        (
            "As recorded",
            {"classes": ["collapse"], "fields": ["grader_snapshot", "persona_versions", "summary"]},
        ),
    ]
    readonly_fields = [
        "live_progress",
        "case_results",
        "repeated_trials",
        "evaluation_cost",
        "pass_rate_chart",
        "latency_chart",
        "cost_chart",
    ]

    class Media:
        css = {"all": ("grading_app/case_results.css",)}

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
        return f"{obj.done_cases}/{obj.total_cases}" + (f" ({obj.trials} trials)" if obj.trials > 1 else "")

    @admin.display(description="Progress")
    def live_progress(self, obj: Run) -> SafeString:
        context = {
            "progress": _progress(obj),
            "progress_url": reverse("admin:grading_app_run_progress", args=[obj.pk]),
        }
        return render_to_string("admin/grading_app/run_progress.html", context)

    @admin.display(description="Case results")
    def case_results(self, obj: Run) -> str:
        """How many results passed, failed, errored or got no grade, each a link to those results."""
        counts = outcome_counts(CaseResult.objects.filter(run=obj))
        url = reverse("admin:grading_app_caseresult_changelist")
        if not counts["total"]:
            return "No case results yet."
        links = format_html_join(
            " · ", "{}", ((_outcome_link(url, obj, o, counts[o.value]),) for o in Outcome)
        )
        return format_html('<a href="{}?run={}">All {}</a>: {}', url, obj.pk, counts["total"], links)

    @admin.display(description="Evaluation cost")
    def evaluation_cost(self, obj: Run) -> str:
        """What the judges and simulated users cost, as the run's summary recorded it at its end
        (the candidate's own cost is under Production signals)."""
        spent = (obj.summary or {}).get("evaluation_cost")
        if not spent:
            return "No model calls of its own (code graders only)." if obj.is_finished else "-"
        parts = []
        if judges := spent.get("judges"):
            reused = f", {_counted(judges['cached'], 'answer')} reused" if judges.get("cached") else ""
            parts.append(
                f"judges {_counted(judges['calls'], 'call')}{reused}: {judges['input_tokens']:,} tokens in, "
                f"{judges['output_tokens']:,} out, ${judges['cost_usd']:,.4f}"
            )
        if users := spent.get("simulated_users"):
            parts.append(
                f"simulated users {_counted(users['calls'], 'turn')}: {users['input_tokens']:,} tokens in, "
                f"{users['output_tokens']:,} out, ${users['cost_usd']:,.4f}"
            )
        return f"${spent['cost_usd']:,.4f} in all: " + "; ".join(parts)

    @admin.display(description="Repeated trials")
    def repeated_trials(self, obj: Run) -> str:
        """Per grader: pass@k, pass^k and consistency with their intervals, and the flaky cases."""
        block = obj.summary.get("trials")
        if not block:
            return "One trial per case." if obj.trials == 1 else "Shown when the run finishes."
        k = block["k"]

        def pct(value: float | None, interval: list | None = None) -> str:
            if value is None:
                return "-"
            return f"{value:.0%}" + (f" ({interval[0]:.0%}-{interval[1]:.0%})" if interval else "")

        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    slug,
                    t["cases"],
                    pct(t["pass_at_k"], t["pass_at_k_interval"]),
                    pct(t["pass_hat_k"], t["pass_hat_k_interval"]),
                    pct(t["consistency"], t["consistency_interval"]),
                    ", ".join(f"{c['case']} ({c['passed']}/{c['of']})" for c in t["flaky"][:10])
                    + (f" and {t['flaky_cases'] - 10} more" if t["flaky_cases"] > 10 else "")
                    or "none",
                )
                for slug, t in block["graders"].items()
            ),
        )
        return format_html(
            "<table><thead><tr><th>grader</th><th>cases</th><th>pass@{}</th><th>pass^{}</th>"
            "<th>consistency</th><th>flaky cases (trials passed)</th></tr></thead><tbody>{}</tbody></table>",
            k,
            k,
            rows,
        )

    @admin.display(description="Pass rate")
    def pass_rate_chart(self, obj: Run) -> SafeString:
        if not charts.has_pass_rates(obj.summary):
            return embed.empty("No pass rates yet: they appear when the run finishes.")
        return embed.render(charts.pass_rate_by_group(obj.summary, trials=obj.trials), height=420)

    @admin.display(description="Latency and TTFT")
    def latency_chart(self, obj: Run) -> SafeString:
        latencies, ttfts, _ = _case_signals(obj)
        if not latencies and not ttfts:
            return embed.empty("No latency recorded.")
        return embed.render(charts.latency_and_ttft_histogram(latencies, ttfts, trials=obj.trials))

    @admin.display(description="Cost per case")
    def cost_chart(self, obj: Run) -> SafeString:
        _, _, costs = _case_signals(obj)
        if not costs:
            return embed.empty("No cost recorded.")
        return embed.render(charts.cost_per_case(costs, trials=obj.trials), height=260)

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


def _counted(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _outcome_link(changelist: str, run: Run, outcome: Outcome, count: int) -> SafeString:
    """The count of one outcome ("12 failed") as a link to those results; a zero is said, not linked."""
    if not count:
        return format_html('<span class="outcome-none">0 {}</span>', outcome.label.lower())
    return format_html(
        '<a class="outcome outcome-{}" href="{}?run={}&amp;outcome={}">{} {}</a>',
        outcome.value,
        changelist,
        run.pk,
        outcome.value,
        count,
        outcome.label.lower(),
    )


def _case_signals(run: Run) -> tuple[list[float], list[float], list[float]]:
    """(latencies, TTFTs, costs) of the cases that produced, as the run's summary counts them:
    a case of repeated trials is one value, the mean of its trials (grading_app.summary), read
    once for both charts of the page."""
    if not hasattr(run, "_case_signals"):
        if run.trials > 1:
            rows = [
                (r.latency_ms, r.ttft_ms, r.cost_usd) for r in iter_case_rows(run) if not r.failed_to_produce
            ]
        else:  # a result is a case: three columns, not the rows with their grades
            rows = list(
                CaseResult.objects.filter(run=run, **PRODUCED).values_list(
                    "latency_ms", "ttft_ms", "cost_usd"
                )
            )
        run._case_signals = tuple([r[i] for r in rows if r[i] is not None] for i in range(3))
    return run._case_signals


def _progress(run: Run) -> dict[str, Any]:
    # Each trial of a case is a result of its own: count results, and say how they add up.
    unit = (
        f"results ({run.total_cases // run.trials} cases x {run.trials} trials)"
        if run.trials > 1
        else "cases"
    )
    return {
        "unit": unit,
        "status": run.status,
        "done": run.done_cases,
        "total": run.total_cases,
        "errors": run.error_cases,
        "finished": run.is_finished,
    }


@admin.register(Grade)
class GradeAdmin(ReadOnlyAdmin):
    list_display = ["id", "case_result", "grader", "passed", "score", "error"]
    list_filter = ["passed", "grader"]
    list_select_related = ["case_result", "grader"]
    raw_id_fields = ["case_result"]
    show_full_result_count = False
