"""Admin for incidents: reported from production, triaged, converted to pinned cases."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from datasets_app import services
from datasets_app.choices import IncidentStatus
from datasets_app.models import Incident
from datasets_app.views import convert_incident_view
from evalproject.admin_actions import GovernedAdmin, confirm_action


@admin.register(Incident)
class IncidentAdmin(GovernedAdmin):
    list_display = ["title", "severity", "status", "dataset", "reporter", "created_at", "regression_case"]
    list_filter = ["status", "severity", "dataset"]
    list_select_related = ["dataset", "reporter"]
    search_fields = ["title", "description"]
    raw_id_fields = ["reporter", "dataset", "failure_class"]
    show_full_result_count = False  # reported by deploy tokens from production: no second COUNT(*)
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
        if not obj.input:  # the service would refuse: say what is missing instead of offering it
            return "Add the input the system was given (Input) to convert it into a regression case."
        url = reverse("admin:datasets_app_incident_convert", args=[obj.pk])
        return format_html('<a class="button" href="{}">Convert to a regression case</a>', url)

    def has_triage_permission(self, request: HttpRequest) -> bool:
        # Offered only to whom the service allows (Dataset owners): no refusal after a confirmation.
        return request.user.has_perm("datasets_app.triage_incident")

    @admin.action(description="Mark selected incidents triaged", permissions=["triage"])
    def triage(self, request: HttpRequest, queryset: QuerySet[Incident]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Triage incidents",
            verb="Mark triaged",
            perform=lambda i, note: services.triage_incident(i, actor=request.user, note=note),
        )

    @admin.action(description="Dismiss selected incidents", permissions=["triage"])
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
