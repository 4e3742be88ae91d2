"""Admin for domain experts: cases, datasets, failure classes and incidents.

Thin by design: every lifecycle move is a service call, irreversible ones take a
confirmation step, and nothing governed is deleted from here.
"""

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from datasets_app import charts, services
from datasets_app.choices import CaseStatus, IncidentStatus, PinnedChange
from datasets_app.forms import CaseForm
from datasets_app.models import UNCLASSIFIED, Case, Dataset, FailureClass, Incident, PinnedCaseRequest
from datasets_app.views import convert_incident_view, import_cases_view
from evalproject.admin_actions import GovernedAdmin, confirm_action, run_each
from evalproject.charts import empty, render


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 160 else text[:157] + "..."


@admin.register(FailureClass)
class FailureClassAdmin(GovernedAdmin):
    list_display = ["slug", "name", "description", "case_count"]
    search_fields = ["slug", "name", "description"]
    prepopulated_fields = {"slug": ["name"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[FailureClass]:
        # One aggregate in the changelist query instead of one count per row.
        return super().get_queryset(request).annotate(n_cases=Count("cases"))

    @admin.display(description="Cases", ordering="n_cases")
    def case_count(self, obj: FailureClass) -> int:
        return obj.n_cases


@admin.register(Dataset)
class DatasetAdmin(GovernedAdmin):
    list_display = ["slug", "name", "owner", "updated_at"]
    list_select_related = ["owner"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    raw_id_fields = ["owner"]
    readonly_fields = ["case_counts", "tools"]
    chart_fields = ["case_chart", "growth_chart", "incident_chart"]
    actions = ["export_jsonl", "export_csv"]


    def get_readonly_fields(self, request: HttpRequest, obj: Dataset | None = None) -> list[str]:
        # Charts only for a dataset that exists: the add page has nothing to draw.
        return [*super().get_readonly_fields(request, obj), *(self.chart_fields if obj else [])]

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/import/", view(self.import_view), name="datasets_app_dataset_import"),
            *super().get_urls(),
        ]

    def import_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return import_cases_view(self, request, get_object_or_404(Dataset, pk=pk))

    def _case_count_rows(self, obj: Dataset) -> list[tuple[str, str, str, int]]:
        """(tier, failure class, status, cases), read once for both the table and the chart."""
        if not hasattr(obj, "_chart_case_counts"):
            obj._chart_case_counts = list(
                Case.objects.filter(dataset=obj)
                .values_list("tier", "failure_class__slug", "status")
                .annotate(n=Count("pk"))
                .order_by("tier", "failure_class__slug", "status")
            )
        return obj._chart_case_counts

    @admin.display(description="Cases by tier, failure class and status")
    def case_counts(self, obj: Dataset) -> str:
        if not obj.pk:
            return "-"
        statuses = CaseStatus.values
        table: dict[tuple[str, str], dict[str, int]] = {}
        for tier, failure_class, status, n in self._case_count_rows(obj):
            table.setdefault((tier, failure_class), {})[status] = n
        if not table:
            return "No cases yet."
        header = format_html_join("", "<th>{}</th>", ((s.replace("_", " "),) for s in statuses))
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td>{}</tr>",
            (
                (tier, fc, format_html_join("", "<td>{}</td>", ((counts.get(s, 0),) for s in statuses)))
                for (tier, fc), counts in table.items()
            ),
        )
        return format_html(
            "<table><thead><tr><th>tier</th><th>failure class</th>{}</tr></thead><tbody>{}</tbody></table>",
            header,
            body,
        )

    @admin.display(description="Cases, charted")
    def case_chart(self, obj: Dataset) -> SafeString:
        rows = self._case_count_rows(obj)
        return render(charts.cases_by_tier_class_status(rows)) if rows else empty("No cases yet.")

    @admin.display(description="Growth")
    def growth_chart(self, obj: Dataset) -> SafeString:
        rows = list(
            Case.objects.filter(dataset=obj)
            .annotate(day=TruncDate("created_at"))
            .values_list("day", "tier")
            .annotate(n=Count("pk"))
            .order_by("day", "tier")
        )
        return render(charts.growth(rows)) if rows else empty("No cases yet.")

    @admin.display(description="Incidents")
    def incident_chart(self, obj: Dataset) -> SafeString:
        rows = list(
            Incident.objects.filter(dataset=obj)
            .values_list("status", "severity")
            .annotate(n=Count("pk"))
            .order_by("status", "severity")
        )
        return render(charts.incidents_by_status(rows)) if rows else empty("No incidents reported for it.")

    @admin.display(description="Import")
    def tools(self, obj: Dataset) -> str:
        if not obj.pk:
            return "-"
        url = reverse("admin:datasets_app_dataset_import", args=[obj.pk])
        return format_html('<a class="button" href="{}">Import cases from a file</a>', url)

    def _export(self, request: HttpRequest, queryset: QuerySet[Dataset], fmt: str) -> HttpResponse | None:
        if queryset.count() != 1:
            messages.error(request, "Export one dataset at a time.")
            return None
        dataset = queryset.get()
        body = services.export_cases(dataset, fmt, actor=request.user)
        content_type = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
        response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{dataset.slug}.{fmt}"'
        return response

    @admin.action(description="Export cases as JSONL", permissions=["import"])
    def export_jsonl(self, request: HttpRequest, queryset: QuerySet[Dataset]) -> HttpResponse | None:
        return self._export(request, queryset, "jsonl")

    @admin.action(description="Export cases as CSV", permissions=["import"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Dataset]) -> HttpResponse | None:
        return self._export(request, queryset, "csv")

    def has_import_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("datasets_app.import_cases")


class UnclassifiedFilter(admin.SimpleListFilter):
    title = "needs triage"
    parameter_name = "triage"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("unclassified", "Unclassified (imported without a failure class)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Case]) -> QuerySet[Case]:
        if self.value() == "unclassified":
            return queryset.filter(failure_class__slug=UNCLASSIFIED)
        return queryset


@admin.register(Case)
class CaseAdmin(GovernedAdmin):
    form = CaseForm
    list_display = [
        "key",
        "dataset",
        "tier",
        "status",
        "failure_class_flagged",
        "risk",
        "pinned",
        "revision",
        "updated_at",
    ]
    list_filter = [
        "dataset",
        "tier",
        "status",
        "failure_class",
        "risk",
        "pinned",
        "source",
        UnclassifiedFilter,
    ]
    list_select_related = ["dataset", "failure_class"]
    search_fields = ["key"]
    raw_id_fields = ["incident"]
    show_full_result_count = False
    list_per_page = 100
    actions = [
        "submit_for_review",
        "audit_and_activate",
        "promote_to_trusted",
        "demote",
        "retire",
        "restore",
        "ask_to_retire_pinned",
        "ask_to_unpin",
    ]
    fieldsets = [
        (None, {"fields": ["dataset", "key", "failure_class", "tier", "risk", "pinned", "tags"]}),
        ("What the user asks", {"fields": ["conversation", "user_message", "input"]}),
        (
            "What success looks like",
            {
                "fields": [
                    "answer",
                    "contains",
                    "must_refuse",
                    "must_abstain",
                    "citations",
                    "tools",
                    "expected_summary",
                    "expected",
                ]
            },
        ),
        (
            "Governance",
            {
                "fields": [
                    "status",
                    "revision",
                    "source",
                    "incident",
                    "contributed_by",
                    "audited_by",
                    "audited_at",
                ]
            },
        ),
    ]
    governance = ["status", "revision", "source", "incident", "contributed_by", "audited_by", "audited_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Case | None = None) -> list[str]:
        readonly = ["conversation", "expected_summary", *self.governance]
        if obj is not None:
            readonly += ["dataset", "tier"]  # tier moves only through promote / demote
        return readonly

    def has_change_permission(self, request: HttpRequest, obj: Case | None = None) -> bool:
        if obj is not None and obj.status == CaseStatus.RETIRED:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Case, form: CaseForm, change: bool) -> None:
        data = form.cleaned_data
        if not change:
            saved = services.add_case(
                dataset=data["dataset"],
                key=data["key"],
                failure_class=data["failure_class"],
                input=data["input"],
                expected=data["expected"],
                tier=data["tier"],
                risk=data["risk"],
                tags=data["tags"],
                pinned=data["pinned"],
                actor=request.user,
            )
        else:
            editable = {*Case.CONTENT_FIELDS, "key"}
            saved = services.edit_case(
                Case.objects.get(pk=obj.pk), actor=request.user, **{f: data[f] for f in editable if f in data}
            )
            if saved.status == CaseStatus.IN_REVIEW and obj.status == CaseStatus.ACTIVE:
                messages.warning(request, "This trusted case changed, so it is back in review until audited.")
        obj.pk, obj.status, obj.revision = saved.pk, saved.status, saved.revision

    @admin.display(description="Failure class", ordering="failure_class__slug")
    def failure_class_flagged(self, obj: Case) -> str:
        if obj.failure_class.slug == UNCLASSIFIED:
            return format_html('<strong style="color:#ba2121">{}</strong>', "unclassified: triage")
        return obj.failure_class.slug

    @admin.display(description="Conversation")
    def conversation(self, obj: Case) -> str:
        messages_ = (obj.input or {}).get("messages") or []
        if not messages_:
            return "-"
        return format_html_join(
            "",
            '<p style="margin:0 0 .4em"><b>{}:</b> {}</p>',
            ((m.get("role"), m.get("content")) for m in messages_),
        )

    @admin.display(description="Expected, in words")
    def expected_summary(self, obj: Case) -> str:
        expected = obj.expected or {}
        if not expected:
            return "Nothing yet: graders will skip this case."
        return format_html_join("", "<div><b>{}</b>: {}</div>", ((k, _short(v)) for k, v in expected.items()))

    @admin.action(description="Submit selected drafts for review")
    def submit_for_review(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        run_each(request, queryset, "Submitted", lambda c: services.submit_case(c, actor=request.user))

    @admin.action(description="Audit and activate selected cases")
    def audit_and_activate(self, request: HttpRequest, queryset: QuerySet[Case]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Audit and activate cases",
            verb="Audit and activate",
            explanation="You confirm each case is correct. Active cases count in every run; trusted "
            "ones decide releases. You cannot audit trusted cases you contributed or changed since "
            "their last audit. Your note is kept in the case's history and the audit log.",
            perform=lambda c, reason: services.audit_case(c, actor=request.user, reason=reason),
        )

    @admin.action(description="Promote selected cases to the trusted tier")
    def promote_to_trusted(self, request: HttpRequest, queryset: QuerySet[Case]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Promote to trusted",
            verb="Promote",
            explanation="Trusted cases decide releases. You cannot promote cases you contributed "
            "or changed since their last audit.",
            perform=lambda c, reason: services.promote_case(c, actor=request.user, reason=reason),
        )

    @admin.action(description="Demote selected cases to monitoring")
    def demote(self, request: HttpRequest, queryset: QuerySet[Case]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Demote to monitoring",
            verb="Demote",
            reason_required=True,
            perform=lambda c, reason: services.demote_case(c, actor=request.user, reason=reason),
        )

    @admin.action(description="Retire selected cases")
    def retire(self, request: HttpRequest, queryset: QuerySet[Case]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Retire cases",
            verb="Retire",
            reason_required=True,
            explanation="Retired cases stop counting in runs. Their history stays. Pinned cases are "
            "retired only through a request that a second person confirms.",
            perform=lambda c, reason: services.retire_case(c, actor=request.user, reason=reason),
        )

    @admin.action(description="Restore selected retired cases (back to review)")
    def restore(self, request: HttpRequest, queryset: QuerySet[Case]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Restore retired cases",
            verb="Restore",
            reason_required=True,
            explanation="A restored case goes back to review and counts again once audited.",
            perform=lambda c, reason: services.restore_case(c, actor=request.user, reason=reason),
        )

    def _ask(self, request: HttpRequest, queryset: QuerySet[Case], change: str, title: str) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title=title,
            verb="Ask",
            reason_required=True,
            explanation="A pinned case keeps an incident fixed, so ending it takes two people: this "
            "asks; another dataset owner or an owner of a gate on the dataset confirms it (Pinned case "
            "requests). Nothing changes until then.",
            perform=lambda c, reason: services.request_pinned_change(
                c, actor=request.user, change=change, reason=reason
            ),
        )

    @admin.action(description="Ask to retire selected pinned cases (a second person confirms)")
    def ask_to_retire_pinned(self, request: HttpRequest, queryset: QuerySet[Case]) -> Any:
        return self._ask(request, queryset, PinnedChange.RETIRE, "Ask to retire pinned cases")

    @admin.action(description="Ask to unpin selected cases (a second person confirms)")
    def ask_to_unpin(self, request: HttpRequest, queryset: QuerySet[Case]) -> Any:
        return self._ask(request, queryset, PinnedChange.UNPIN, "Ask to unpin cases")


@admin.register(PinnedCaseRequest)
class PinnedCaseRequestAdmin(admin.ModelAdmin):
    """Open requests to retire or unpin pinned cases, decided by a second person."""

    list_display = ["case", "change", "status", "requested_by", "requested_at", "reason", "decided_by"]
    list_filter = ["status", "change", "case__dataset"]
    list_select_related = ["case", "requested_by", "decided_by"]
    search_fields = ["case__key", "reason"]
    actions = ["confirm", "decline", "withdraw"]
    readonly_fields = [
        "case",
        "change",
        "status",
        "reason",
        "requested_by",
        "requested_at",
        "decided_by",
        "decided_at",
        "decision_note",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # asked from the case list (Ask to retire / unpin)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Confirm selected requests (you are the second person)")
    def confirm(self, request: HttpRequest, queryset: QuerySet[PinnedCaseRequest]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Confirm pinned case requests",
            verb="Confirm",
            explanation="Confirming unpins the case (and retires it, when that was asked): it stops "
            "guarding its incident. You cannot confirm your own request.",
            perform=lambda r, note: services.confirm_pinned_change(r, actor=request.user, note=note),
        )

    @admin.action(description="Decline selected requests")
    def decline(self, request: HttpRequest, queryset: QuerySet[PinnedCaseRequest]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Decline pinned case requests",
            verb="Decline",
            reason_required=True,
            perform=lambda r, note: services.decline_pinned_change(r, actor=request.user, note=note),
        )

    @admin.action(description="Withdraw selected requests (yours)")
    def withdraw(self, request: HttpRequest, queryset: QuerySet[PinnedCaseRequest]) -> None:
        run_each(
            request, queryset, "Withdrew", lambda r: services.withdraw_pinned_change(r, actor=request.user)
        )


@admin.register(Incident)
class IncidentAdmin(GovernedAdmin):
    list_display = ["title", "severity", "status", "dataset", "reporter", "created_at", "regression_case"]
    list_filter = ["status", "severity", "dataset"]
    list_select_related = ["dataset", "reporter"]
    search_fields = ["title", "description"]
    raw_id_fields = ["reporter", "dataset", "failure_class"]
    readonly_fields = [
        "status",
        "reporter",
        "reported_via",
        "triaged_by",
        "triaged_at",
        "triage_note",
        "regression_case",
        "convert_link",
    ]
    actions = ["triage", "dismiss"]

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/convert/", view(self.convert_view), name="datasets_app_incident_convert"),
            *super().get_urls(),
        ]

    def convert_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return convert_incident_view(self, request, get_object_or_404(Incident, pk=pk))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Incident]:
        return super().get_queryset(request).prefetch_related("regression_cases")

    def save_model(self, request: HttpRequest, obj: Incident, form: Any, change: bool) -> None:
        if not change:
            obj.reporter = request.user
        super().save_model(request, obj, form, change)

    @admin.display(description="Regression case")
    def regression_case(self, obj: Incident) -> str:
        cases = list(obj.regression_cases.all())
        return (
            format_html_join(
                ", ",
                '<a href="{}">{}</a>',
                ((reverse("admin:datasets_app_case_change", args=[c.pk]), c.key) for c in cases),
            )
            or "-"
        )

    @admin.display(description="Convert")
    def convert_link(self, obj: Incident) -> str:
        if not obj.pk or obj.status in (IncidentStatus.CONVERTED, IncidentStatus.DISMISSED):
            return "-"
        url = reverse("admin:datasets_app_incident_convert", args=[obj.pk])
        return format_html('<a class="button" href="{}">Convert to a regression case</a>', url)

    @admin.action(description="Mark selected incidents triaged")
    def triage(self, request: HttpRequest, queryset: QuerySet[Incident]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Triage incidents",
            verb="Mark triaged",
            perform=lambda i, note: services.triage_incident(i, actor=request.user, note=note),
        )

    @admin.action(description="Dismiss selected incidents")
    def dismiss(self, request: HttpRequest, queryset: QuerySet[Incident]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Dismiss incidents",
            verb="Dismiss",
            reason_required=True,
            perform=lambda i, reason: services.dismiss_incident(i, actor=request.user, reason=reason),
        )
