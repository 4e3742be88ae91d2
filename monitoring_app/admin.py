"""Production traffic in the admin: sources (redaction, retention), traces (read-only), monitors
with their alert rules, the samples they graded and the alerts they fired."""

import json
from contextvars import ContextVar
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from datasets_app.choices import Severity
from datasets_app.models import Dataset, FailureClass
from evalproject.admin_actions import GovernedAdmin, confirm_action
from evalproject.charts import empty, render
from evalproject.decisions import Decision, DecisionsMixin
from grading_app.traces import timeline
from monitoring_app import charts, drift, services
from monitoring_app.models import Alert, AlertRule, Monitor, MonitorSample, Source, Trace, TraceGrade


@admin.register(Source)
class SourceAdmin(GovernedAdmin):
    list_display = ["slug", "name", "owner", "retention_days", "redaction_rules"]
    search_fields = ["slug", "name"]
    autocomplete_fields = ["owner"]
    list_select_related = ["owner"]
    prepopulated_fields = {"slug": ["name"]}

    @admin.display(description="Redaction rules")
    def redaction_rules(self, obj: Source) -> int:
        return len(obj.redaction or [])

    def has_change_permission(self, request: HttpRequest, obj: Source | None = None) -> bool:
        if obj is not None and services.source_change_refusal(obj, request.user):
            return False
        return super().has_change_permission(request, obj)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"owner": request.user.pk, **super().get_changeform_initial_data(request)}

    def save_model(self, request: HttpRequest, obj: Source, form: Any, change: bool) -> None:
        services.save_source(obj, actor=request.user)


# Who is looking at the object page being rendered: readonly fields offer only what this person
# may do. A context variable, not an attribute of the (shared) ModelAdmin, so concurrent
# requests never see each other's user.
_viewer: ContextVar[Any] = ContextVar("monitoring_admin_viewer", default=None)


class ViewerMixin:
    def change_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        token = _viewer.set(request.user)
        try:
            response = super().change_view(request, *args, **kwargs)
            if hasattr(response, "render"):
                response.render()  # the readonly fields run now, while the viewer is known
            return response
        finally:
            _viewer.reset(token)


def feed_links(trace_id: int) -> list[SafeString]:
    """The ways from a trace into the suite that the viewer may take."""
    user, links = _viewer.get(), []
    if user is not None and user.has_perm("datasets_app.add_incident"):
        url = reverse("admin:monitoring_app_trace_incident", args=[trace_id])
        links.append(format_html('<a class="button" href="{}">Report as an incident</a>', url))
    if user is not None and user.has_perm("datasets_app.add_case"):
        url = reverse("admin:monitoring_app_trace_case", args=[trace_id])
        links.append(format_html('<a class="button" href="{}">Add to a monitoring tier</a>', url))
    return links


def _joined(parts: list[SafeString]) -> SafeString:
    return format_html(" ".join(["{}"] * len(parts)), *parts) if parts else format_html("{}", "-")


def _pretty(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)


def action_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    obj: Any,
    *,
    title: str,
    form: forms.Form,
    submit: str,
    explanation: str,
) -> TemplateResponse:
    """A small form page about one object (what to make of a trace, an alert's acknowledgement)."""
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "submit": submit,
        "explanation": explanation,
        "opts": opts,
        "list_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
        "list_title": opts.verbose_name_plural.capitalize(),
        "object_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]),
        "object_title": str(obj),
    }
    return TemplateResponse(request, "admin/monitoring_app/trace_action.html", context)


class IncidentFromTraceForm(forms.Form):
    title = forms.CharField(max_length=300)
    severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.MEDIUM)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    dataset = forms.ModelChoiceField(Dataset.objects.all(), required=False)
    failure_class = forms.ModelChoiceField(FailureClass.objects.all(), required=False)


class CaseFromTraceForm(forms.Form):
    dataset = forms.ModelChoiceField(Dataset.objects.all())
    failure_class = forms.ModelChoiceField(FailureClass.objects.all())
    key = forms.SlugField(max_length=200, required=False, help_text="Empty: prod-<source>-<trace id>.")


def _signal(value: bool | None, detected: bool) -> str | None:
    return None if value is None else f"{value} (detected)" if detected else str(value)


@admin.register(Trace)
class TraceAdmin(ViewerMixin, admin.ModelAdmin):
    """Traces are evidence: nobody edits one; they leave only by the retention purge."""

    list_display = ["client_id", "time", "source", "release", "latency_ms", "refused", "escalated", "thumbs"]
    list_filter = [
        *("source", "origin", "thumbs", "refused", "escalated"),
        *("refused_detected", "escalated_detected"),
    ]
    search_fields = ["client_id", "release"]
    date_hierarchy = "time"
    list_select_related = ["source"]
    show_full_result_count = False  # counting millions of rows for a header line is not worth it
    list_per_page = 100
    fields = [
        "source",
        "client_id",
        "time",
        "received_at",
        "release",
        "origin",
        "feed_buttons",
        "conversation",
        "output_shown",
        "steps",
        "signals",
        "feedback",
        "metadata_shown",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Trace | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Trace | None = None) -> bool:
        return False

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/incident/", view(self.incident_view), name="monitoring_app_trace_incident"),
            path("<int:pk>/case/", view(self.case_view), name="monitoring_app_trace_case"),
            *super().get_urls(),
        ]

    @admin.display(description="Feed the suite")
    def feed_buttons(self, obj: Trace) -> SafeString:
        return _joined(feed_links(obj.pk))

    def _feed_view(
        self, request: HttpRequest, pk: int, form_class: type[forms.Form], *, title: str, submit: str,
        explanation: str, perform: Any,
    ) -> HttpResponse:  # fmt: skip
        trace = get_object_or_404(Trace.objects.select_related("source"), pk=pk)
        if not self.has_view_permission(request, trace):
            raise PermissionDenied
        form = form_class(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                created = perform(trace, form.cleaned_data)
            except PermissionDenied as exc:
                messages.error(request, str(exc))
            except ValidationError as exc:
                for message in exc.messages:
                    form.add_error(None, message)
            else:
                messages.success(request, f"{created._meta.verbose_name.capitalize()} {created} created.")
                opts = created._meta
                return HttpResponseRedirect(
                    reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[created.pk])
                )
        return action_page(
            self, request, trace, title=title, form=form, submit=submit, explanation=explanation
        )

    def incident_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self._feed_view(
            request,
            pk,
            IncidentFromTraceForm,
            title="Report as an incident",
            submit="Report the incident",
            explanation="The incident carries the trace's input, output and steps; it is triaged like "
            "any incident, and may become a pinned case every later release must pass.",
            perform=lambda trace, data: services.trace_to_incident(trace, actor=request.user, **data),
        )

    def case_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self._feed_view(
            request,
            pk,
            CaseFromTraceForm,
            title="Add to a monitoring tier",
            submit="Add the draft case",
            explanation="A draft monitoring case with the trace's input; the observed output and steps "
            "are kept as context, not as the expected answer. Say what success looks like on the case.",
            perform=lambda trace, data: services.trace_to_case(trace, actor=request.user, **data),
        )

    @admin.display(description="Input")
    def conversation(self, obj: Trace) -> SafeString:
        return format_html('<pre class="result-json">{}</pre>', _pretty(obj.input))

    @admin.display(description="Output")
    def output_shown(self, obj: Trace) -> SafeString:
        if obj.output is None:
            return format_html(
                "<em>{}</em>", "no final answer (the last turn called a tool, or none was sent)"
            )
        return format_html('<pre class="result-json">{}</pre>', _pretty(obj.output))

    @admin.display(description="Trace")
    def steps(self, obj: Trace) -> SafeString:
        return render_to_string("admin/grading_app/trace_timeline.html", {"steps": timeline(obj.trace)})

    @admin.display(description="Signals")
    def signals(self, obj: Trace) -> str:
        parts = [
            f"{label} {value}"
            for label, value in (
                ("latency", f"{obj.latency_ms:g} ms" if obj.latency_ms is not None else None),
                ("TTFT", f"{obj.ttft_ms:g} ms" if obj.ttft_ms is not None else None),
                ("tokens in", obj.input_tokens),
                ("tokens out", obj.output_tokens),
                ("cost", f"${obj.cost_usd:.6f}" if obj.cost_usd is not None else None),
                ("retries", obj.retries),
                ("refused", _signal(obj.refused, obj.refused_detected)),
                ("escalated", _signal(obj.escalated, obj.escalated_detected)),
                ("tool calls", obj.tool_calls),
            )
            if value is not None
        ]
        return " · ".join(parts) or "none reported"

    @admin.display(description="Feedback")
    def feedback(self, obj: Trace) -> str:
        parts = [obj.get_thumbs_display() if obj.thumbs else ""]
        if obj.feedback_score is not None:
            parts.append(f"score {obj.feedback_score:g}")
        if obj.feedback_comment:
            parts.append(f"“{obj.feedback_comment}”")
        return " · ".join(p for p in parts if p) or "none"

    @admin.display(description="Metadata")
    def metadata_shown(self, obj: Trace) -> SafeString:
        return format_html('<pre class="result-json">{}</pre>', _pretty(obj.metadata))


class AlertRuleInline(admin.TabularInline):
    model = AlertRule
    extra = 0
    fields = ["name", "metric", "grader", "failure_class", "margin", "active"]

    def _owns(self, request: HttpRequest, obj: Monitor | None) -> bool:
        return obj is None or services.monitor_change_refusal(obj, request.user) is None

    def has_add_permission(self, request: HttpRequest, obj: Monitor | None = None) -> bool:
        return self._owns(request, obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Monitor | None = None) -> bool:
        return self._owns(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Monitor | None = None) -> bool:
        return self._owns(request, obj) and super().has_delete_permission(request, obj)


class MonitorForm(forms.ModelForm):
    class Meta:
        model = Monitor
        exclude: list[str] = []  # every field: the fieldsets below choose what shows

    def clean_graders(self) -> Any:
        graders = self.cleaned_data.get("graders")
        refusal = services.judge_refusal(list(graders or []))
        if refusal:
            raise ValidationError(refusal)
        return graders


@admin.register(Monitor)
class MonitorAdmin(GovernedAdmin):
    form = MonitorForm
    list_display = ["slug", "name", "source", "release", "sample_rate", "owner", "open_alerts", "active"]
    list_filter = ["source", "active"]
    list_select_related = ["source", "owner"]
    search_fields = ["slug", "name"]
    autocomplete_fields = ["owner"]
    filter_horizontal = ["graders"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [AlertRuleInline]
    fieldsets = [
        (None, {"fields": ["slug", "name", "description", "owner", "active"]}),
        ("Traffic watched", {"fields": ["source", "release", "metadata_filter", "sample_rate"]}),
        ("Grading", {"fields": ["graders", "expected", "judge_calls_per_hour", "dataset"]}),
        (
            "Drift windows",
            {
                "fields": [
                    ("window_minutes", "min_window_traces"),
                    "reference",
                    ("reference_start", "reference_end"),
                    "webhook_url",
                ]
            },
        ),
        ("Over time", {"fields": ["charts_shown"]}),
        ("Last complete window", {"fields": ["window_shown"]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Monitor | None = None) -> list[str]:
        return ["charts_shown", "window_shown"]

    @admin.display(description="Metrics per window")
    def charts_shown(self, obj: Monitor) -> SafeString:
        if obj.pk is None:
            return empty("Charts appear once the monitor has seen traffic.")
        drawn = [
            render(
                charts.metric_timeline(title, points, alerts=alerts, releases=releases, unit=unit), height=300
            )
            for title, unit, points, alerts, releases in drift.charts(obj)
            if points
        ]
        if not drawn:
            return empty("No traffic in the last windows.")
        return format_html("".join(["{}"] * len(drawn)), *drawn)

    def has_change_permission(self, request: HttpRequest, obj: Monitor | None = None) -> bool:
        if obj is not None and services.monitor_change_refusal(obj, request.user):
            return False
        return super().has_change_permission(request, obj)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"owner": request.user.pk, **super().get_changeform_initial_data(request)}

    @admin.display(description="Open alerts")
    def open_alerts(self, obj: Monitor) -> int:
        return obj.alerts.filter(acknowledged_at__isnull=True).count()

    @admin.display(description="Metrics")
    def window_shown(self, obj: Monitor) -> SafeString:
        if obj.pk is None:
            return format_html("<em>{}</em>", "Metrics appear once the monitor has seen a window of traffic.")
        window = drift.last_complete_window(obj)
        rows = drift.window_table(obj, window)
        return render_to_string(
            "admin/monitoring_app/window_table.html", {"window": window, "rows": rows, "monitor": obj}
        )

    def save_model(self, request: HttpRequest, obj: Monitor, form: Any, change: bool) -> None:
        """Saved in save_related, with its graders, in one service call (the rule lives there)."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        services.save_monitor(form.instance, actor=request.user, graders=list(form.cleaned_data["graders"]))
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


class TraceGradeInline(admin.TabularInline):
    model = TraceGrade
    extra = 0
    can_delete = False
    fields = ["grader", "rubric_version", "passed", "score", "rationale", "error", "cached"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


DISMISS = Decision(
    "dismiss",
    "Dismiss this flagged trace",
    perform=lambda user, sample, reason: services.dismiss_review(sample, actor=user, note=reason),
    why=lambda user, sample: services.review_refusal(sample, user),
    reason_required=True,
    explanation="Say why the trace needs no case or incident; it is kept with the review.",
)
ACKNOWLEDGE = Decision(
    "acknowledge",
    "Acknowledge this alert",
    perform=lambda user, alert, reason: services.acknowledge_alert(alert, actor=user, note=reason),
    why=lambda user, alert: services.acknowledge_refusal(alert, user),
    reason_required=True,
    explanation="Say what you found or did about this drift; it is kept with the alert.",
)


@admin.register(MonitorSample)
class MonitorSampleAdmin(ViewerMixin, DecisionsMixin, admin.ModelAdmin):
    """Graded production traces, browsable like case results: the trace, its grades, why."""

    list_display = ["time", "trace_link", "monitor", "release", "failure_class", "passed", "status", "review"]
    list_display_links = ["time"]  # the sample (grades, review); the trace column opens the trace
    list_filter = ["monitor", "passed", "status", "review", "in_sample"]
    list_select_related = ["monitor", "trace"]
    date_hierarchy = "time"
    show_full_result_count = False
    list_per_page = 100
    inlines = [TraceGradeInline]
    actions = ["dismiss"]
    fields = [
        "monitor",
        "trace_link",
        "time",
        "release",
        "failure_class",
        "in_sample",
        "status",
        "passed",
        "error",
        "review",
        "flagged_because",
        "next_steps",
        "reviewed_by",
        "reviewed_at",
        "review_note",
        "conversation",
        "output_shown",
        "steps",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Trace")
    def trace_link(self, obj: MonitorSample) -> SafeString:
        from django.urls import reverse

        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:monitoring_app_trace_change", args=[obj.trace_id]),
            obj.trace.client_id,
        )

    @admin.display(description="Input")
    def conversation(self, obj: MonitorSample) -> SafeString:
        return format_html('<pre class="result-json">{}</pre>', _pretty(obj.trace.input))

    @admin.display(description="Output")
    def output_shown(self, obj: MonitorSample) -> SafeString:
        return format_html('<pre class="result-json">{}</pre>', _pretty(obj.trace.output))

    @admin.display(description="Trace steps")
    def steps(self, obj: MonitorSample) -> SafeString:
        return render_to_string("admin/grading_app/trace_timeline.html", {"steps": timeline(obj.trace.trace)})

    @admin.display(description="Flagged because")
    def flagged_because(self, obj: MonitorSample) -> str:
        trace, reasons = obj.trace, []
        if obj.passed is False:
            failed = obj.grades.filter(passed=False).values_list("grader__slug", flat=True)
            reasons.append("failed " + ", ".join(failed))
        if trace.thumbs == "down" or (trace.feedback_score is not None and trace.feedback_score < 0.5):
            said = f": “{trace.feedback_comment}”" if trace.feedback_comment else ""
            reasons.append(f"negative feedback{said}")
        return "; ".join(reasons) or "-"

    @admin.display(description="Next steps")
    def next_steps(self, obj: MonitorSample) -> SafeString:
        return _joined(feed_links(obj.trace_id))

    def get_decisions(self, request: HttpRequest, obj: MonitorSample) -> list[Decision]:
        return [DISMISS]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # samples are settled by the dismiss action or by what is made of the trace

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not request.user.has_perm("monitoring_app.change_monitorsample"):
            actions.pop("dismiss", None)
        return actions

    @admin.action(description="Dismiss the selected flagged traces")
    def dismiss(self, request: HttpRequest, queryset: QuerySet[MonitorSample]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Dismiss flagged traces",
            verb="Dismissed",
            reason_required=True,
            perform=lambda sample, reason: services.dismiss_review(sample, actor=request.user, note=reason),
            explanation="Say why the trace needs no case or incident; it is kept with the review.",
        )


@admin.register(Alert)
class AlertAdmin(DecisionsMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "monitor",
        "metric",
        "value",
        "reference_value",
        "interval_shown",
        "fired_at",
        "acknowledged_by",
    ]
    list_filter = ["monitor", "metric", ("acknowledged_at", admin.EmptyFieldListFilter)]
    list_select_related = ["monitor", "rule", "acknowledged_by"]
    show_full_result_count = False  # one per rule and window that fired: no second COUNT(*)
    actions = ["acknowledge"]
    fields = [
        "monitor",
        "rule",
        "metric",
        ("window_start", "window_end"),
        ("reference_start", "reference_end"),
        ("value", "reference_value", "difference"),
        "interval_shown",
        ("n", "reference_n"),
        "traces_link",
        "fired_at",
        "webhook_status",
        ("acknowledged_by", "acknowledged_at"),
        "note",
    ]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The page of an alert only shows it; acknowledging is a decision (or the changelist action).
        return obj is None and super().has_change_permission(request, obj)

    def get_decisions(self, request: HttpRequest, obj: Alert) -> list[Decision]:
        return [ACKNOWLEDGE]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f for group in self.fields for f in (group if isinstance(group, tuple) else (group,))]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="95% interval of the difference")
    def interval_shown(self, obj: Alert) -> str:
        low, high = obj.interval
        return f"[{low:+.4g}, {high:+.4g}] (margin {obj.rule.margin:g})"

    @admin.display(description="Traces behind it")
    def traces_link(self, obj: Alert) -> SafeString:
        return format_html('<a href="{}">{}</a>', drift.traces_behind(obj), "the traces of the window")

    @admin.action(description="Acknowledge the selected alerts", permissions=["change"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alert]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Acknowledge alerts",
            verb="Acknowledged",
            perform=lambda alert, reason: services.acknowledge_alert(alert, actor=request.user, note=reason),
            explanation="Say what you found or did; it is kept with the alert.",
        )
