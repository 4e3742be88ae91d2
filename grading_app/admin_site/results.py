"""Admin for case results: the list (by outcome, grader, failure class, run; search by case key),
the page of one result (its verdict first, then why) and its comparison with an earlier run."""

from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from grading_app.admin_site import result_page as page
from grading_app.admin_site.outcomes import GRADE_FAILED, Outcome, grade_outcome, with_outcome
from grading_app.admin_site.runs import ReadOnlyAdmin
from grading_app.models import CaseResult, Grade, Grader, Run
from grading_app.traces import timeline

EARLIER_RUNS = 10  # how many earlier results of the same case a result page offers to compare with
RECENT_RUNS = 10  # runs offered by the list's run filter (a run page links to any other run)


class OutcomeFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(Outcome.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[CaseResult]) -> QuerySet[CaseResult]:
        if self.value() is None:
            return queryset
        if self.value() not in Outcome.values:
            raise IncorrectLookupParameters(f"Unknown outcome {self.value()!r}.")
        return queryset.filter(outcome=self.value())  # annotated by CaseResultAdmin.get_queryset


def _graders(request: HttpRequest) -> list[tuple[str, str]]:
    # Both grader filters list the same graders: one query per request, not one per filter.
    if not hasattr(request, "_evalgate_graders"):
        graders = Grader.objects.order_by("slug").values_list("slug", "kind")
        request._evalgate_graders = [(slug, f"{slug} ({kind})") for slug, kind in graders]
    return request._evalgate_graders


class GraderFilter(admin.SimpleListFilter):
    """Results the grader graded (whatever the grade said)."""

    title = "grader"
    parameter_name = "grader"
    grade_condition: Q | None = None

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return _graders(request)

    def queryset(self, request: HttpRequest, queryset: QuerySet[CaseResult]) -> QuerySet[CaseResult]:
        if self.value() is None:
            return queryset
        grades = Grade.objects.filter(case_result=OuterRef("pk"), grader__slug=self.value())
        if self.grade_condition is not None:
            grades = grades.filter(self.grade_condition)
        # EXISTS rather than a join to the grades: one row per result whatever else is filtered.
        return queryset.filter(Exists(grades))


class FailingGraderFilter(GraderFilter):
    """Results the grader failed (a decided fail, not an error)."""

    title = "failing grader"
    parameter_name = "failed_by"
    grade_condition = GRADE_FAILED


class RunFilter(admin.SimpleListFilter):
    """The latest runs, and the chosen one when it is older (a run's page links here)."""

    title = "run"
    parameter_name = "run"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        runs = list(Run.objects.order_by("-created_at")[:RECENT_RUNS])
        chosen = self.value()
        if chosen and chosen.isdigit() and all(str(run.pk) != chosen for run in runs):
            runs += list(Run.objects.filter(pk=int(chosen)))
        return [(str(run.pk), str(run)) for run in runs]

    def queryset(self, request: HttpRequest, queryset: QuerySet[CaseResult]) -> QuerySet[CaseResult]:
        if self.value() is None:
            return queryset
        if not self.value().isdigit():
            raise IncorrectLookupParameters(f"Not a run id: {self.value()!r}.")
        return queryset.filter(run_id=int(self.value()))


class ResultChangeList(ChangeList):
    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[CaseResult]:
        # The page's grades, for the column naming failing graders: one query for the whole page
        # (prefetch), not one per row; only what the column reads, not rationales or judge answers.
        listed = Grade.objects.select_related("grader").only("case_result", "passed", "error", "grader__slug")
        return (
            super()
            .get_queryset(request, exclude_parameters)
            .prefetch_related(Prefetch("grades", queryset=listed, to_attr="listed_grades"))
        )


def outcome_badge(outcome: str) -> SafeString:
    return format_html('<span class="outcome outcome-{}">{}</span>', outcome, Outcome(outcome).label)


@admin.register(CaseResult)
class CaseResultAdmin(ReadOnlyAdmin):
    list_display = [
        "case_key",
        "run",
        "outcome_shown",
        "graders_shown",
        "failure_class",
        "latency",
    ]
    list_display_links = ["case_key"]
    list_filter = [
        OutcomeFilter,
        RunFilter,
        GraderFilter,
        FailingGraderFilter,
        ("case__failure_class", admin.RelatedFieldListFilter),
        "case__tier",
    ]
    list_select_related = ["run", "case__failure_class"]
    search_fields = ["case__key"]
    search_help_text = "Search by case key (or part of it)."
    ordering = ["-run__created_at", "case__key"]
    raw_id_fields = ["run", "case"]
    show_full_result_count = False
    change_form_template = "admin/grading_app/caseresult_change_form.html"
    # Verdict, grades, case, output, signals and trace come first, from the template (result_page.py).
    fieldsets = [
        ("Earlier runs of this case", {"fields": ["compare_with"]}),
        ("As recorded", {"classes": ["collapse"], "fields": ["raw_trace", "case_revision", "created_at"]}),
    ]
    readonly_fields = ["compare_with", "raw_trace"]

    class Media:
        css = {"all": ("grading_app/trace_timeline.css", "grading_app/case_results.css")}

    def get_queryset(self, request: HttpRequest) -> QuerySet[CaseResult]:
        # The list and the page both show the outcome; the page also names the case's dataset.
        return with_outcome(super().get_queryset(request)).select_related(
            "run", "case__dataset", "case__failure_class"
        )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ResultChangeList

    def get_urls(self) -> list:
        return [
            path(
                "<int:pk>/compare/",
                self.admin_site.admin_view(self.compare_view),
                name="grading_app_caseresult_compare",
            ),
            *super().get_urls(),
        ]

    # the list

    @admin.display(description="Case", ordering="case__key")
    def case_key(self, obj: CaseResult) -> SafeString:
        pinned = mark_safe(' <span class="case-pinned">pinned</span>') if obj.case.pinned else ""
        # A run of repeated trials has a result per trial: say which one this is.
        trial = format_html(" · trial {} of {}", obj.trial, obj.run.trials) if obj.run.trials > 1 else ""
        return format_html("{}{}{}", obj.case.key, trial, pinned)

    @admin.display(description="Outcome", ordering="outcome")
    def outcome_shown(self, obj: CaseResult) -> SafeString:
        return outcome_badge(obj.outcome)

    @admin.display(description="Grades")
    def graders_shown(self, obj: CaseResult) -> SafeString | str:
        """The graders that failed or errored by name, the passes as a count."""
        grades = getattr(obj, "listed_grades", None)
        if grades is None:  # not from the list's queryset
            grades = list(obj.grades.select_related("grader"))
        by_outcome: dict[Outcome, list[str]] = {}
        for grade in sorted(grades, key=lambda g: g.grader.slug):
            by_outcome.setdefault(grade_outcome(grade), []).append(grade.grader.slug)
        parts = [
            format_html(
                "{}: {}",
                outcome.label.lower(),
                format_html_join(", ", "<code>{}</code>", ((slug,) for slug in by_outcome[outcome])),
            )
            for outcome in (Outcome.FAILED, Outcome.ERRORED)
            if outcome in by_outcome
        ]
        if Outcome.PASSED in by_outcome:
            parts.append(format_html("{} passed", len(by_outcome[Outcome.PASSED])))
        return format_html_join("; ", "{}", ((part,) for part in parts)) or "-"

    @admin.display(description="Failure class", ordering="case__failure_class__name")
    def failure_class(self, obj: CaseResult) -> str:
        return str(obj.case.failure_class)  # as the failure class filter names it

    @admin.display(description="Latency", ordering="latency_ms")
    def latency(self, obj: CaseResult) -> str:
        return "-" if obj.latency_ms is None else f"{obj.latency_ms:,.0f} ms"

    # the page

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: CaseResult | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context.update(self.result_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def result_context(self, request: HttpRequest, obj: CaseResult) -> dict[str, Any]:
        """What the page's template shows above the fieldsets (see result_page.py)."""
        grades = list(obj.grades.select_related("grader", "rubric_version__rubric"))
        rows = page.grade_rows(request, self.admin_site, grades)
        case = page.case_as_graded(obj)
        changelist = reverse("admin:grading_app_caseresult_changelist")
        return {
            "subtitle": f"Case {obj.case.key} in {obj.run}" + _trial_of(obj),
            "trial": _trial_of(obj),
            "verdict": page.verdict(obj, grades),
            "grade_rows": rows,
            "judged": any(row["rubric_version"] or row["raw_response"] for row in rows),
            "case": obj.case,
            "case_url": page.admin_url(request, self.admin_site, obj.case),
            "run": obj.run,
            "run_url": page.admin_url(request, self.admin_site, obj.run),
            "case_note": case["note"],
            "conversation": page.conversation(case["input"]),
            "expected_rows": page.expected_in_words(case["expected"]),
            "expected_json": page.pretty(case["expected"]),
            "output": page.output_shown(obj.output),
            "signals": page.signals(obj),
            "steps": timeline(obj.trace),
            "tools_in_order": obj.tool_sequence,
            "run_results_url": f"{changelist}?run={obj.run_id}",
            "case_results_url": f"{changelist}?case__id__exact={obj.case_id}",
        }

    @admin.display(description="Trace, as stored")
    def raw_trace(self, obj: CaseResult) -> SafeString:
        return format_html('<pre class="result-json">{}</pre>', page.pretty(obj.trace))

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
        candidate = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_view_permission(request, candidate):
            raise PermissionDenied
        try:
            baseline_run = get_object_or_404(Run, pk=int(request.GET["baseline_run"]))
        except (KeyError, ValueError):
            return HttpResponseBadRequest("Say which run to compare with: ?baseline_run=<run id>.")
        baseline = self.get_queryset(request).filter(run=baseline_run, case_id=candidate.case_id).first()
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
        "outcome": outcome_badge(result.outcome) if result else "",
        "output": page.output_shown(result.output) if result else None,
        "grades": grades,
        "steps": timeline(result.trace) if result else [],
    }


def _trial_of(result: CaseResult) -> str:
    """ ", trial 2 of 3" for a run of repeated trials (each trial has its own result), else ""."""
    return f", trial {result.trial} of {result.run.trials}" if result.run.trials > 1 else ""
