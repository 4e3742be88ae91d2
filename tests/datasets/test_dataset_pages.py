"""Charts on the dataset page: cases by tier, failure class and status, growth, incidents."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from datasets_app import services
from datasets_app.choices import Severity
from tests.factories import make_case, make_dataset, make_failure_class, make_scenario, make_user

pytestmark = pytest.mark.django_db

CHART = 'class="evalgate-chart"'
PLOTLY_SCRIPT = 'src="/static/plotly/plotly.min.js"'


@pytest.fixture
def superuser_client(client):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_dataset_page_charts_cases_growth_and_incidents(superuser_client, dataset_owner):
    s = make_scenario()
    dataset = s["dataset"]
    make_case(dataset, "draft-1", failure_class=make_failure_class("safety"), active=False)
    question = {"messages": [{"role": "user", "content": "Refund after 40 days?"}]}
    services.report_incident(
        title="Still open", severity=Severity.LOW, input=question, dataset=dataset, actor=None
    )
    converted = services.report_incident(
        title="Promised a refund", severity=Severity.HIGH, input=question, actor=None
    )
    services.convert_incident(
        converted, actor=dataset_owner, dataset=dataset, failure_class=make_failure_class(), key="incident-1"
    )

    with CaptureQueriesContext(connection) as queries:
        html = page(superuser_client, reverse("admin:datasets_app_dataset_change", args=[dataset.pk]))

    assert html.count(CHART) == 3
    assert html.count(PLOTLY_SCRIPT) == 1  # loaded once, from our static files
    assert "Cases by tier, failure class and status" in html
    assert "Cases added over time" in html
    assert "Incidents by status" in html
    assert "<th>failure class</th>" in html  # the count table stays beside its chart
    # The table and the stacked bars share one read of the counts.
    counts = [
        q["sql"]
        for q in queries.captured_queries
        if "GROUP BY" in q["sql"] and '"datasets_app_failureclass"."slug"' in q["sql"]
    ]
    assert len(counts) == 1, counts


def test_a_new_dataset_says_there_is_nothing_to_chart_yet(superuser_client):
    dataset = make_dataset()
    html = page(superuser_client, reverse("admin:datasets_app_dataset_change", args=[dataset.pk]))

    assert CHART not in html
    assert "No incidents reported for it." in html


def test_add_dataset_page_draws_no_charts(superuser_client):
    assert CHART not in page(superuser_client, reverse("admin:datasets_app_dataset_add"))


def test_a_domain_expert_sees_the_charts_on_the_read_only_dataset_page(client, expert):
    dataset = make_scenario()["dataset"]
    client.force_login(expert)
    html = page(client, reverse("admin:datasets_app_dataset_change", args=[dataset.pk]))

    assert 'name="_save"' not in html
    assert html.count(CHART) == 2  # cases and growth; no incidents to draw
