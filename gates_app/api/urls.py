from django.urls import path, re_path

from gates_app.api import dataset_views, errors, rubric_views, views

app_name = "api"

urlpatterns = [
    path("gates/", views.GateList.as_view(), name="gate-list"),
    path("gates/<slug:slug>/checks/", views.CheckCreate.as_view(), name="check-create"),
    path("gates/<slug:slug>/verdict/", views.GateVerdict.as_view(), name="gate-verdict"),
    path("checks/<int:pk>/", views.CheckDetail.as_view(), name="check-detail"),
    path("checks/<int:pk>/approve/", views.CheckApprove.as_view(), name="check-approve"),
    path("checks/<int:pk>/override/", views.CheckOverride.as_view(), name="check-override"),
    path("checks/<int:pk>/cancel/", views.CheckCancel.as_view(), name="check-cancel"),
    path("rubrics/", rubric_views.RubricList.as_view(), name="rubric-list"),
    path("incidents/", dataset_views.IncidentCreate.as_view(), name="incident-create"),
    path("datasets/<slug:slug>/cases/", dataset_views.DatasetCasesCreate.as_view(), name="dataset-cases"),
    # Last: only paths ending in "/", so CommonMiddleware still redirects "gates" to "gates/".
    re_path(r"^(?P<path>(?:[\s\S]*/)?)$", errors.unknown_endpoint),
]
