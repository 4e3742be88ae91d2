"""Charts on the check and gate pages, and the admin index dashboard."""

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from gates_app.dashboard import RUNS_SHOWN
from gates_app.models import Check
from gates_app.services import request_check
from grading_app.choices import RunStatus
from grading_app.models import Grade, HumanLabel
from tests.factories import make_endpoint, make_rubric_version, make_scenario, make_user, outputs_for

pytestmark = pytest.mark.django_db

CHART = 'class="evalgate-chart"'
PLOTLY_SCRIPT = 'src="/static/plotly/plotly.min.js"'


@pytest.fixture
def superuser_client(client):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def checked(django_capture_on_commit_callbacks) -> dict:
    """A gate with two decided checks: a good one (the baseline) and a slow one (warn)."""
    s = make_scenario()
    for candidate, latency in (("good", 800), ("slow", 5000)):
        with django_capture_on_commit_callbacks(execute=True):
            request_check(
                gate=s["gate"], candidate=candidate, outputs=outputs_for(s["cases"], latency_ms=latency)
            )
    s["good"], s["slow"] = Check.objects.get(candidate="good"), Check.objects.get(candidate="slow")
    return s


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_check_page_charts_its_rules_and_trace_deltas_against_the_baseline(superuser_client, checked):
    assert checked["slow"].baseline == checked["good"]
    html = page(superuser_client, reverse("admin:gates_app_check_change", args=[checked["slow"].pk]))

    assert html.count(CHART) == 2
    assert html.count(PLOTLY_SCRIPT) == 1  # loaded once, from our static files
    assert 'class="rule-table"' in html  # the table stays beside its chart
    assert "Rules: candidate against baseline" in html
    assert "Trace deltas against the baseline" in html


def test_check_without_baseline_charts_its_rules_and_says_why_there_are_no_deltas(superuser_client, checked):
    html = page(superuser_client, reverse("admin:gates_app_check_change", args=[checked["good"].pk]))

    assert html.count(CHART) == 1
    assert "No trace deltas: the check has no baseline" in html


def test_gate_page_charts_verdict_history_and_rule_trends(superuser_client, checked):
    html = page(superuser_client, reverse("admin:gates_app_gate_change", args=[checked["gate"].pk]))

    assert html.count(CHART) == 2
    assert html.count(PLOTLY_SCRIPT) == 1
    assert "Verdicts over time" in html and "Rule values across checks" in html
    assert "trusted accuracy" in html and "latency budget" in html


def test_gate_charts_read_the_checks_once(superuser_client, checked):
    with CaptureQueriesContext(connection) as queries:
        page(superuser_client, reverse("admin:gates_app_gate_change", args=[checked["gate"].pk]))
    reads = [q["sql"] for q in queries.captured_queries if '"rule_results"' in q["sql"]]
    assert len(reads) == 1


def test_a_release_approver_sees_the_gate_charts_on_the_read_only_page(client, checked, approver):
    client.force_login(approver)
    html = page(client, reverse("admin:gates_app_gate_change", args=[checked["gate"].pk]))

    assert 'name="_save"' not in html  # not the owner: read only
    assert html.count(CHART) == 2


def test_who_cannot_view_checks_sees_no_gate_history(client, checked):
    viewer = make_user(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_gate"))
    client.force_login(viewer)
    html = page(client, reverse("admin:gates_app_gate_change", args=[checked["gate"].pk]))

    assert CHART not in html


def test_add_gate_page_draws_no_charts(superuser_client):
    html = page(superuser_client, reverse("admin:gates_app_gate_add"))
    assert CHART not in html


# --- the admin index dashboard -------------------------------------------------------------


def judged(check: Check) -> list[Grade]:
    """Make the check's grades look judged (pinned to an approved rubric version)."""
    version = make_rubric_version(make_endpoint("http://127.0.0.1:9/v1"))
    grades = list(Grade.objects.filter(case_result__run=check.run))
    for grade in grades:
        grade.rubric_version = version
        grade.save()
    return grades


def test_index_dashboard_lists_latest_verdicts_runs_in_flight_and_the_review_queue(superuser_client, checked):
    grades = judged(checked["slow"])
    HumanLabel.objects.create(grade=grades[0], reviewer=make_user(), passed=True)
    # A check whose run is still queued: its jobs start only after a commit that never comes.
    request_check(gate=checked["gate"], candidate="in-flight", outputs=outputs_for(checked["cases"]))

    html = page(superuser_client, reverse("admin:index"))

    latest = html.split('id="evalgate-latest-verdicts"')[1].split("</table>")[0]
    assert reverse("admin:gates_app_check_change", args=[checked["slow"].pk]) in latest
    assert "Warn" in latest and "good" not in latest  # the latest decided check only
    runs = html.split('id="evalgate-runs-in-flight"')[1].split("</table>")[0]
    assert "Runs in flight: 1" in runs and "in-flight" in runs
    assert f"0/{len(checked['cases'])}" in runs
    assert f'<td class="review-queue-size">{len(grades) - 1}</td>' in html
    assert html.count(CHART) == 1  # verdict counts
    assert html.count(PLOTLY_SCRIPT) == 1
    assert 'class="app-gates_app' in html  # the app list is still there, below


def test_index_dashboard_shows_each_section_only_to_who_may_view_its_rows(client, checked, expert, approver):
    client.force_login(expert)  # sees cases, not checks, runs or grades: only what waits for them
    html = page(client, reverse("admin:index"))
    assert 'id="evalgate-waiting"' in html
    assert 'id="evalgate-latest-verdicts"' not in html and 'id="evalgate-runs-in-flight"' not in html

    client.force_login(approver)  # views checks, runs and grades, but labels none
    html = page(client, reverse("admin:index"))
    assert 'id="evalgate-latest-verdicts"' in html and 'id="evalgate-runs-in-flight"' in html
    assert 'id="evalgate-review-queue"' in html
    assert ">Review</a>" not in html


def test_index_dashboard_when_nothing_has_happened_yet(superuser_client):
    html = page(superuser_client, reverse("admin:index"))
    assert "No active gate has a decided check yet." in html
    assert "No run is queued or running." in html
    assert CHART not in html and PLOTLY_SCRIPT not in html


def test_runs_in_flight_counts_beyond_the_rows_shown(superuser_client, checked):
    for i in range(RUNS_SHOWN + 2):
        request_check(gate=checked["gate"], candidate=f"c{i}", outputs=outputs_for(checked["cases"]))
    html = page(superuser_client, reverse("admin:index"))
    assert f"Runs in flight: {RUNS_SHOWN + 2}" in html
    assert RunStatus.QUEUED.label in html


def test_plotly_loads_once_on_pages_with_charts_and_never_on_pages_without(superuser_client, checked):
    gate_page = superuser_client.get(reverse("admin:gates_app_gate_change", args=[checked["gate"].pk]))
    check_page = superuser_client.get(reverse("admin:gates_app_check_change", args=[checked["slow"].pk]))
    case_list = superuser_client.get(reverse("admin:datasets_app_case_changelist"))
    check_list = superuser_client.get(reverse("admin:gates_app_check_changelist"))

    assert gate_page.content.decode().count(CHART) == 2
    assert gate_page.content.decode().count(PLOTLY_SCRIPT) == 1
    assert check_page.content.decode().count(PLOTLY_SCRIPT) == 1
    assert PLOTLY_SCRIPT not in case_list.content.decode()
    assert PLOTLY_SCRIPT not in check_list.content.decode()
