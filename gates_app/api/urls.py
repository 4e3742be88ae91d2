from django.urls import path, re_path, register_converter

from gates_app.api import dataset_views, errors, rubric_views, trace_views, views


class CheckIdConverter:
    """A check id the database can hold (a bigint): longer digit strings are simply not found."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(CheckIdConverter, "check_id")

app_name = "api"

urlpatterns = [
    path("gates/", views.GateList.as_view(), name="gate-list"),
    path("gates/<slug:slug>/checks/", views.CheckCreate.as_view(), name="check-create"),
    path("gates/<slug:slug>/verdict/", views.GateVerdict.as_view(), name="gate-verdict"),
    path("gates/<slug:slug>/production/", views.GateProduction.as_view(), name="gate-production"),
    path("checks/<check_id:pk>/", views.CheckDetail.as_view(), name="check-detail"),
    path("checks/<check_id:pk>/approve/", views.CheckApprove.as_view(), name="check-approve"),
    path("checks/<check_id:pk>/override/", views.CheckOverride.as_view(), name="check-override"),
    path("checks/<check_id:pk>/cancel/", views.CheckCancel.as_view(), name="check-cancel"),
    path("checks/<check_id:pk>/outputs/", views.CheckOutputsPage.as_view(), name="check-outputs"),
    path("rubrics/", rubric_views.RubricList.as_view(), name="rubric-list"),
    path("traces/", trace_views.TraceBatchCreate.as_view(), name="trace-batch"),
    path(
        "traces/<slug:source>/<str:client_id>/incident/",
        trace_views.TraceIncidentCreate.as_view(),
        name="trace-incident",
    ),
    path(
        "traces/<slug:source>/<str:client_id>/case/", trace_views.TraceCaseCreate.as_view(), name="trace-case"
    ),
    path("incidents/", dataset_views.IncidentCreate.as_view(), name="incident-create"),
    path("datasets/<slug:slug>/cases/", dataset_views.DatasetCasesCreate.as_view(), name="dataset-cases"),
    # Last: only paths ending in "/", so CommonMiddleware still redirects "gates" to "gates/".
    re_path(r"^(?P<path>(?:[\s\S]*/)?)$", errors.unknown_endpoint),
]
