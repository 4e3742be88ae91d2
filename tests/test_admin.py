"""The admin is usable: every page of every model renders; result changelists stay N+1-free."""

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from gates_app.services import request_check
from tests.factories import make_scenario, make_user, outputs_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def gate_checked(cases: int, capture) -> dict:
    s = make_scenario(n_trusted=cases, n_monitoring=0)
    with capture(execute=True):
        request_check(gate=s["gate"], candidate="v1", outputs=outputs_for(s["cases"]))
    return s


def test_every_registered_model_has_working_changelist_and_detail_pages(
    superuser_client, django_capture_on_commit_callbacks
):
    gate_checked(3, django_capture_on_commit_callbacks)
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        if not meta.managed:
            continue  # django-rq's dashboard link, not a table
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert superuser_client.get(changelist).status_code == 200, changelist
        first = model.objects.first()
        if first is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[first.pk])
            assert superuser_client.get(change).status_code == 200, change
        if model_admin.has_add_permission(type("R", (), {"user": make_user(is_superuser=True)})()):
            add = reverse(f"admin:{meta.app_label}_{meta.model_name}_add")
            assert superuser_client.get(add).status_code == 200, add


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:datasets_app_case_changelist",
        "admin:grading_app_run_changelist",
        "admin:grading_app_caseresult_changelist",
        "admin:grading_app_grade_changelist",
        "admin:gates_app_check_changelist",
    ],
)
def test_changelist_query_count_does_not_grow_with_rows(
    superuser_client, django_capture_on_commit_callbacks, url_name
):
    # Expected queries, whatever the row count: session, user, count (or none with
    # show_full_result_count off), the page of rows with its select_related joins, and the
    # filter sidebars' lookups. So the count at 1 row equals the count at 40 rows.
    gate_checked(1, django_capture_on_commit_callbacks)
    url = reverse(url_name)
    with CaptureQueriesContext(connection) as small:
        assert superuser_client.get(url).status_code == 200
    gate_checked(40, django_capture_on_commit_callbacks)
    with CaptureQueriesContext(connection) as large:
        assert superuser_client.get(url).status_code == 200
    assert len(large) == len(small), [q["sql"] for q in large.captured_queries]


def test_rq_dashboard_is_for_superusers_only(client):
    client.force_login(make_user("staff", is_staff=True))
    response = client.get("/admin/rq/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
