"""Admin for grading configuration: graders, endpoints, targets (all with history)."""

from django.contrib import admin

from evalproject.admin_actions import GovernedAdmin
from grading_app.models import Endpoint, Grader, Target


class NoDeleteHistoryAdmin(GovernedAdmin):
    """Runs pin these: change or deactivate them; history keeps what each run used."""


@admin.register(Grader)
class GraderAdmin(NoDeleteHistoryAdmin):
    list_display = ["slug", "kind", "dimension", "rubric", "active", "updated_at"]
    list_filter = ["kind", "dimension", "active"]
    list_select_related = ["rubric"]
    search_fields = ["slug", "name"]
    filter_horizontal = ["failure_classes"]
    raw_id_fields = ["rubric_version"]


@admin.register(Endpoint)
class EndpointAdmin(NoDeleteHistoryAdmin):
    list_display = ["name", "base_url", "api_key_env", "max_concurrency", "timeout_s", "max_retries"]
    search_fields = ["name", "base_url"]


@admin.register(Target)
class TargetAdmin(NoDeleteHistoryAdmin):
    list_display = ["slug", "kind", "endpoint", "updated_at"]
    list_filter = ["kind"]
    list_select_related = ["endpoint"]
    search_fields = ["slug", "name"]
