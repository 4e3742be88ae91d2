"""Top-level routes: the admin, the public API v1, its schema and docs, the RQ dashboard."""

from django.contrib import admin
from django.contrib.admin.views.decorators import user_passes_test
from django.urls import include, path, re_path
from django_rq import stats_views
from django_rq.urls import get_admin_urlpatterns
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from evalproject import views
from gates_app.admin_site.waiting import waiting_view
from gates_app.api.trace_views import OtlpTraces

# The RQ dashboard can enqueue, requeue and delete jobs: superusers only.
superuser_required = user_passes_test(lambda u: u.is_active and u.is_superuser, login_url="admin:login")

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path(
        "admin/rq/",
        include(
            (
                [
                    *get_admin_urlpatterns(view_wrapper=superuser_required),
                    # The dashboard links its JSON view; django-rq lists it with its token API.
                    re_path(r"^stats.json/?$", superuser_required(stats_views.stats_json), name="home_json"),
                ],
                "django_rq",
            )
        ),
    ),
    path("admin/waiting/", admin.site.admin_view(waiting_view), name="waiting"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("gates_app.api.urls")),
    # OTEL_EXPORTER_OTLP_ENDPOINT=https://evalgate.example.com/otlp: exporters append /v1/traces.
    path("otlp/v1/traces", OtlpTraces.as_view(), name="otlp-traces"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

handler400 = "evalproject.views.bad_request"
handler500 = "evalproject.views.server_error"
