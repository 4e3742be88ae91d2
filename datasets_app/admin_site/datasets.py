"""Admin for datasets (their cases charted, import and export) and failure classes.

Thin by design: every lifecycle move is a service call, irreversible ones take a
confirmation step, and nothing governed is deleted from here.
"""

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
from datasets_app.choices import CaseStatus
from datasets_app.models import Case, Dataset, FailureClass, Incident
from datasets_app.views import import_cases_view
from evalproject.admin_actions import GovernedAdmin
from evalproject.charts import empty, render
from evalproject.owners import OwnerFieldAdmin


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
class DatasetAdmin(OwnerFieldAdmin, GovernedAdmin):
    list_display = ["slug", "name", "owner", "updated_at"]
    list_select_related = ["owner"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    owner_permission = "datasets_app.change_dataset"
    readonly_fields = ["case_counts", "tools"]
    chart_fields = ["case_chart", "growth_chart", "incident_chart"]
    actions = ["export_jsonl", "export_csv"]

    def has_change_permission(self, request: HttpRequest, obj: Dataset | None = None) -> bool:
        # Only its owner changes a dataset (its owner included): others see it read-only.
        if obj is not None and services.dataset_change_refusal(obj, request.user):
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Dataset, form: Any, change: bool) -> None:
        services.store_dataset(obj, actor=request.user)

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
