"""The grading admin pages: run charts and live progress, trace timelines, compare, calibration chart."""

import html
import json
from typing import Any

import pytest
from django.urls import reverse

from grading_app.choices import RunStatus
from grading_app.models import CaseResult, Grade, HumanLabel, Run
from grading_app.outputs import parse_outputs
from grading_app.services import start_run
from grading_app.traces import timeline
from tests.factories import make_endpoint, make_grader, make_rubric_version, make_scenario, make_user

pytestmark = pytest.mark.django_db

TRACE = [
    {"type": "message", "role": "user", "content": "Refund order 42?"},
    {"type": "retrieval", "documents": [{"id": "doc-7", "text": "Refunds within 30 days."}]},
    {"type": "tool_call", "name": "lookup_order", "arguments": {"order_id": 42}, "result": {"age_days": 40}},
    {"type": "approval", "tool": "issue_refund", "granted": False, "by": "policy-bot"},
    {"type": "message", "role": "assistant", "content": "No"},
]


@pytest.fixture
def admin_client(client):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def outputs(cases: list, answer: str = "No", trace: list | None = None, **metrics: Any) -> list:
    metrics = {"latency_ms": 800, "ttft_ms": 120, "cost_usd": 0.002, **metrics}
    return [{"case": c.key, "output": answer, "trace": trace or TRACE, "metrics": metrics} for c in cases]


def finished_run(scenario: dict, capture, candidate: str = "v1", **kwargs: Any) -> Run:
    with capture(execute=True):
        run = start_run(
            dataset=scenario["dataset"],
            candidate=candidate,
            outputs=parse_outputs(outputs(scenario["cases"], **kwargs)),
        )
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    return run


def test_run_page_draws_its_three_charts_with_plotly_from_our_static_files(
    admin_client, django_capture_on_commit_callbacks
):
    run = finished_run(make_scenario(), django_capture_on_commit_callbacks)
    page = admin_client.get(reverse("admin:grading_app_run_change", args=[run.pk])).content.decode()
    assert page.count('<div class="evalgate-chart">') == 3  # pass rate, latency and TTFT, cost
    assert '<script src="/static/plotly/plotly.min.js"></script>' in page
    assert "cdn.plot.ly" not in page  # air-gapped: the library never comes from a CDN
    assert "Pass rate by tier and failure class" in page


def test_run_page_of_a_queued_run_says_charts_come_later_and_polls_for_progress(admin_client):
    s = make_scenario()
    run = Run.objects.create(dataset=s["dataset"], candidate="v1", status=RunStatus.RUNNING, total_cases=6)
    page = admin_client.get(reverse("admin:grading_app_run_change", args=[run.pk])).content.decode()
    assert 'class="evalgate-chart"' not in page
    assert "No pass rates yet" in page
    assert '<progress value="0" max="6"' in page
    assert reverse("admin:grading_app_run_progress", args=[run.pk]) in page
    assert "setTimeout(poll, 1000)" in page


def test_a_finished_run_shows_a_full_bar_and_does_not_poll(admin_client, django_capture_on_commit_callbacks):
    run = finished_run(make_scenario(), django_capture_on_commit_callbacks)
    page = admin_client.get(reverse("admin:grading_app_run_change", args=[run.pk])).content.decode()
    assert '<progress value="6" max="6"' in page
    assert "setTimeout(poll" not in page


def test_progress_endpoint_returns_the_run_counts(admin_client):
    s = make_scenario()
    run = Run.objects.create(
        dataset=s["dataset"],
        candidate="v1",
        status=RunStatus.RUNNING,
        total_cases=6,
        done_cases=3,
        error_cases=1,
    )
    response = admin_client.get(reverse("admin:grading_app_run_progress", args=[run.pk]))
    assert response.status_code == 200
    assert response.json() == {
        "unit": "cases",
        "status": "running",
        "done": 3,
        "total": 6,
        "errors": 1,
        "finished": False,
    }
    run.trials, run.total_cases = 3, 6
    run.save()  # each trial of a case is a result: 2 cases x 3 trials
    response = admin_client.get(reverse("admin:grading_app_run_progress", args=[run.pk]))
    assert response.json()["unit"] == "results (2 cases x 3 trials)"


def test_progress_endpoint_is_for_staff_only(client):
    s = make_scenario()
    run = Run.objects.create(dataset=s["dataset"], candidate="v1")
    client.force_login(make_user())
    response = client.get(reverse("admin:grading_app_run_progress", args=[run.pk]))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_case_result_page_shows_the_trace_as_a_timeline(admin_client, django_capture_on_commit_callbacks):
    run = finished_run(make_scenario(), django_capture_on_commit_callbacks)
    result = CaseResult.objects.filter(run=run).first()
    page = admin_client.get(reverse("admin:grading_app_caseresult_change", args=[result.pk])).content.decode()
    timeline = page[page.index('<ol class="trace-timeline">') :]
    assert timeline.count('<li class="trace-step') == 5
    assert '<code class="trace-tool">lookup_order</code>' in timeline
    assert json.dumps({"order_id": 42}, indent=2) in html.unescape(timeline)  # arguments, pretty
    assert json.dumps({"age_days": 40}, indent=2) in html.unescape(timeline)  # and the result
    assert "<code>doc-7</code> Refunds within 30 days." in timeline
    assert "refused by <b>policy-bot</b>" in timeline
    assert "grading_app/trace_timeline.css" in page
    assert "No earlier run has this case." in page


def test_case_result_page_offers_the_earlier_runs_of_the_case_to_compare_with(
    admin_client, django_capture_on_commit_callbacks
):
    s = make_scenario()
    baseline = finished_run(s, django_capture_on_commit_callbacks, candidate="v1")
    run = finished_run(s, django_capture_on_commit_callbacks, candidate="v2")
    result = CaseResult.objects.get(run=run, case=s["cases"][0])
    page = admin_client.get(reverse("admin:grading_app_caseresult_change", args=[result.pk])).content.decode()
    compare = reverse("admin:grading_app_caseresult_compare", args=[result.pk])
    assert f'<a href="{compare}?baseline_run={baseline.pk}">{baseline}</a>' in page


def test_compare_view_shows_baseline_and_candidate_side_by_side(
    admin_client, django_capture_on_commit_callbacks
):
    s = make_scenario()
    baseline = finished_run(s, django_capture_on_commit_callbacks, candidate="v1")
    changed = [{"type": "tool_call", "name": "cancel_order", "arguments": {"order_id": 42}}]
    run = finished_run(s, django_capture_on_commit_callbacks, candidate="v2", answer="Yes", trace=changed)
    result = CaseResult.objects.get(run=run, case=s["cases"][0])
    url = reverse("admin:grading_app_caseresult_compare", args=[result.pk])
    page = admin_client.get(url, {"baseline_run": baseline.pk}).content.decode()
    baseline_side = page[page.index("trace-side-baseline") : page.index("trace-side-candidate")]
    candidate_side = page[page.index("trace-side-candidate") :]
    assert str(baseline) in baseline_side and str(run) in candidate_side
    assert "lookup_order" in baseline_side and "cancel_order" not in baseline_side
    assert "cancel_order" in candidate_side and "lookup_order" not in candidate_side
    # The outputs as the candidates gave them: text, never a Python repr ('No').
    assert '<pre class="trace-output">No</pre>' in baseline_side
    assert '<pre class="trace-output">Yes</pre>' in candidate_side
    assert "&#x27;No&#x27;" not in baseline_side
    assert "<code>answer-exact</code>:\n          pass" in baseline_side
    assert "<code>answer-exact</code>:\n          fail" in candidate_side


def test_compare_view_says_when_the_baseline_run_lacks_the_case(
    admin_client, django_capture_on_commit_callbacks
):
    s = make_scenario()
    run = finished_run(s, django_capture_on_commit_callbacks)
    other = Run.objects.create(dataset=s["dataset"], candidate="v0", status=RunStatus.SUCCEEDED)
    result = CaseResult.objects.filter(run=run).first()
    url = reverse("admin:grading_app_caseresult_compare", args=[result.pk])
    page = admin_client.get(url, {"baseline_run": other.pk})
    assert page.status_code == 200
    assert "This run has no result for the case." in page.content.decode()
    assert admin_client.get(url).status_code == 400
    assert admin_client.get(url, {"baseline_run": "x"}).status_code == 400
    assert admin_client.get(url, {"baseline_run": other.pk + 100}).status_code == 404


def test_rubric_version_page_shows_the_judge_vs_human_confusion_matrix(
    admin_client, django_capture_on_commit_callbacks
):
    run = finished_run(make_scenario(), django_capture_on_commit_callbacks)
    # The judge's grades are written by hand, after the run: no judge endpoint is called.
    version = make_rubric_version(make_endpoint("http://127.0.0.1:9/v1"))
    judge = make_grader("judge", kind="llm_judge", rubric=version.rubric)
    reviewer = make_user(roles=("Reviewer",))
    # Judge and human: (T,T), (F,T).
    for result, judged in zip(CaseResult.objects.filter(run=run)[:2], [True, False], strict=True):
        grade = Grade.objects.create(
            case_result=result, grader=judge, rubric_version=version, passed=judged, score=float(judged)
        )
        HumanLabel.objects.create(grade=grade, reviewer=reviewer, passed=True)
    url = reverse("admin:grading_app_rubricversion_change", args=[version.pk])
    page = admin_client.get(url).content.decode()
    assert page.count('<div class="evalgate-chart">') == 1
    assert "Judge vs human (n=2): agreement 50%" in page
    assert '<script src="/static/plotly/plotly.min.js"></script>' in page
    assert "<td>human labels</td><td>2</td><td>50%</td><td>0.00</td>" in page  # the table stays


def test_rubric_version_page_without_labels_says_so(admin_client):
    version = make_rubric_version(make_endpoint("http://127.0.0.1:9/v1"))
    page = admin_client.get(reverse("admin:grading_app_rubricversion_change", args=[version.pk]))
    assert "No human labels yet" in page.content.decode()


def test_timeline_shows_a_step_of_unknown_shape_raw_rather_than_dropping_it():
    steps = timeline([{"type": "thought", "text": "hmm"}, {"type": "tool_call", "name": "f"}])
    assert steps[0] == {"type": "raw", "raw": json.dumps({"type": "thought", "text": "hmm"}, indent=2)}
    assert steps[1] == {"type": "tool_call", "name": "f", "arguments": "{}", "result": None}
