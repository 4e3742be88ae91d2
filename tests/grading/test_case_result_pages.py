"""Case results in the admin: the page leads with the verdict and the grades behind it; the list
filters by outcome, grader, failure class and run, searches by case key, and stays N+1-free."""

import html
import json
import re
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from datasets_app import services as datasets
from grading_app.admin_site.outcomes import Outcome, outcome_counts, with_outcome
from grading_app.choices import RunStatus
from grading_app.models import CaseResult, Grade, Grader, Run
from tests.factories import (
    make_case,
    make_dataset,
    make_endpoint,
    make_failure_class,
    make_grader,
    make_rubric_version,
    make_user,
)

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/grading_app/caseresult/"
PASS, FAIL, ERROR = (True, ""), (False, ""), (None, "judge timed out")


@pytest.fixture
def admin_client(client):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def make_run(dataset: Any, candidate: str = "v1") -> Run:
    return Run.objects.create(dataset=dataset, candidate=candidate, status=RunStatus.SUCCEEDED)


def make_result(
    run: Run, case: Any, grades: dict[Grader, tuple[bool | None, str]] | None = None, **fields: Any
) -> CaseResult:
    """A result as a run writes it, with one grade per grader: (passed, error)."""
    fields.setdefault("output", "No")
    result = CaseResult.objects.create(run=run, case=case, case_revision=case.revision, **fields)
    for grader, (passed, error) in (grades or {}).items():
        score = None if passed is None else float(passed)
        Grade.objects.create(case_result=result, grader=grader, passed=passed, score=score, error=error)
    return result


@pytest.fixture
def world() -> dict[str, Any]:
    """One run with a result of every outcome, keyed by what it shows; two failure classes."""
    dataset = make_dataset()
    factual, citation = make_failure_class("factual"), make_failure_class("citation")
    exact, facts, judge = (
        make_grader("answer-exact"),
        make_grader("facts", kind="contains"),
        make_grader("tone"),
    )
    run = make_run(dataset)
    plan = {
        # key: (failure class, grades, fields, expected outcome)
        "passes": (factual, {exact: PASS, facts: PASS}, {}, Outcome.PASSED),
        "fails": (factual, {exact: FAIL, facts: PASS}, {}, Outcome.FAILED),
        "fails-and-errs": (citation, {exact: FAIL, judge: ERROR}, {}, Outcome.FAILED),
        "grade-errs": (citation, {exact: PASS, judge: ERROR}, {}, Outcome.ERRORED),
        "missing": (factual, {}, {"output": None, "missing": True, "error": "no output"}, Outcome.ERRORED),
        "call-failed": (factual, {}, {"output": None, "error": "HTTP 502 from the target"}, Outcome.ERRORED),
        "ungraded": (citation, {}, {}, Outcome.UNGRADED),
    }
    results, outcomes = {}, {}
    for key, (failure_class, grades, fields, outcome) in plan.items():
        case = make_case(dataset, key, failure_class=failure_class)
        results[key] = make_result(run, case, grades, **fields)
        outcomes[key] = outcome
    return {
        "run": run,
        "results": results,
        "outcomes": outcomes,
        "graders": {"exact": exact, "facts": facts, "judge": judge},
        "classes": {"factual": factual, "citation": citation},
    }


def listed(client, query: dict[str, Any] | None = None) -> list[str]:
    """The case keys a changelist shows for these query parameters."""
    response = client.get(CHANGELIST, query or {})
    assert response.status_code == 200, response
    return sorted(r.case.key for r in response.context["cl"].result_list)


def row_of(page: str, key: str) -> str:
    """The changelist row whose case column links the case key."""
    return next(row for row in page.split("<tr")[1:] if f">{key}</a></th>" in row)


def page_of(client, result: CaseResult) -> str:
    response = client.get(reverse("admin:grading_app_caseresult_change", args=[result.pk]))
    assert response.status_code == 200
    return response.content.decode()


def section(page: str, element_id: str) -> str:
    """The HTML of the element with this id, up to its closing tag (sections do not nest)."""
    start = page.index(f'id="{element_id}"')
    tag = page.rfind("<", 0, start)
    name = re.match(r"<(\w+)", page[tag:]).group(1)
    return page[tag : page.index(f"</{name}>", start) + len(name) + 3]


# outcomes


def test_each_result_gets_the_outcome_its_grades_and_errors_say(world):
    annotated = with_outcome(CaseResult.objects.filter(run=world["run"])).select_related("case")
    assert {r.case.key: r.outcome for r in annotated} == world["outcomes"]


def test_outcome_counts_of_a_run_come_from_one_query(world, django_assert_num_queries):
    with django_assert_num_queries(1):
        counts = outcome_counts(CaseResult.objects.filter(run=world["run"]))
    assert counts == {"total": 7, "passed": 1, "failed": 2, "errored": 3, "ungraded": 1}


# the list: filters and search


@pytest.mark.parametrize("outcome", list(Outcome))
def test_outcome_filter_returns_exactly_the_results_of_that_outcome(admin_client, world, outcome):
    expected = sorted(key for key, o in world["outcomes"].items() if o == outcome)
    assert listed(admin_client, {"outcome": outcome.value}) == expected


def test_grader_filter_returns_the_results_that_grader_graded(admin_client, world):
    assert listed(admin_client, {"grader": "tone"}) == ["fails-and-errs", "grade-errs"]
    assert listed(admin_client, {"grader": "facts"}) == ["fails", "passes"]
    assert listed(admin_client, {"grader": "answer-exact"}) == [
        "fails",
        "fails-and-errs",
        "grade-errs",
        "passes",
    ]


def test_failing_grader_filter_returns_the_results_that_grader_failed(admin_client, world):
    assert listed(admin_client, {"failed_by": "answer-exact"}) == ["fails", "fails-and-errs"]
    assert listed(admin_client, {"failed_by": "facts"}) == []
    assert listed(admin_client, {"failed_by": "tone"}) == []  # it errored: not a fail


def test_failure_class_filter_returns_the_results_of_cases_in_that_class(admin_client, world):
    citation = world["classes"]["citation"]
    query = {"case__failure_class__id__exact": citation.pk}
    assert listed(admin_client, query) == ["fails-and-errs", "grade-errs", "ungraded"]


def test_filters_combine(admin_client, world):
    query = {"outcome": "failed", "case__failure_class__id__exact": world["classes"]["citation"].pk}
    assert listed(admin_client, query) == ["fails-and-errs"]
    assert listed(admin_client, {"outcome": "errored", "grader": "tone"}) == ["grade-errs"]


def test_run_filter_returns_that_runs_results_and_offers_it_even_when_old(admin_client, world):
    other = make_run(world["run"].dataset, candidate="v2")
    make_result(other, world["results"]["passes"].case, {world["graders"]["exact"]: FAIL})
    assert listed(admin_client, {"run": other.pk}) == ["passes"]
    assert len(listed(admin_client)) == 8
    for n in range(12):  # push the chosen run out of the recent runs the filter lists
        make_run(world["run"].dataset, candidate=f"later-{n}")
    response = admin_client.get(CHANGELIST, {"run": world["run"].pk})
    assert str(world["run"]) in response.content.decode()  # still named in the sidebar
    assert len(response.context["cl"].result_list) == 7


@pytest.mark.parametrize("query", [{"outcome": "great"}, {"run": "x"}])
def test_an_unknown_filter_value_is_refused_like_any_bad_lookup(admin_client, world, query):
    response = admin_client.get(CHANGELIST, query)
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_search_finds_results_by_case_key(admin_client, world):
    assert listed(admin_client, {"q": "fails"}) == ["fails", "fails-and-errs"]
    assert listed(admin_client, {"q": "ungraded"}) == ["ungraded"]
    assert listed(admin_client, {"q": "no-such-case"}) == []


def test_list_shows_the_outcome_and_names_the_graders_that_failed_or_errored(admin_client, world):
    page = admin_client.get(CHANGELIST).content.decode()
    assert '<span class="outcome outcome-failed">Failed</span>' in row_of(page, "fails-and-errs")
    assert "failed: <code>answer-exact</code>; errored: <code>tone</code>" in row_of(page, "fails-and-errs")
    assert "failed: <code>answer-exact</code>; 1 passed" in row_of(page, "fails")
    assert "2 passed" in row_of(page, "passes")
    assert '<span class="outcome outcome-ungraded">No grade</span>' in row_of(page, "ungraded")
    assert '<span class="outcome outcome-errored">Errored</span>' in row_of(page, "missing")


# the list at scale


def test_case_result_list_makes_the_same_queries_at_1_and_at_60_rows(admin_client, django_assert_num_queries):
    # Expected queries, whatever the number of results:
    #   1. the session
    #   2. the logged-in user
    #   3. the latest runs listed by the "run" filter
    #   4. the graders, listed by both grader filters (read once per request)
    #   5. the failure classes listed by the "failure class" filter
    #   6. COUNT(*) of the filtered results (show_full_result_count is off: no unfiltered count)
    #   7. the page of results, joined to run, case, dataset and failure class, each with its
    #      outcome computed by EXISTS subqueries in the same statement
    #   8. the grades of the page's results with their graders (one prefetch for the whole page)
    dataset = make_dataset()
    graders = [make_grader("answer-exact"), make_grader("facts", kind="contains")]
    run = make_run(dataset)
    first = make_case(dataset, "case-000")
    make_result(run, first, {graders[0]: FAIL, graders[1]: PASS})
    with django_assert_num_queries(8):
        assert len(listed(admin_client)) == 1

    for i in range(1, 60):
        case = make_case(dataset, f"case-{i:03d}", failure_class=first.failure_class)
        make_result(run, case, {g: (PASS, FAIL, ERROR)[(i + n) % 3] for n, g in enumerate(graders)})
    with django_assert_num_queries(8):
        assert len(listed(admin_client)) == 60
    with django_assert_num_queries(8):  # a filter on the outcome changes no count either
        assert len(listed(admin_client, {"outcome": "failed", "grader": "facts"})) > 0


# the page of one result


def test_change_page_makes_the_same_queries_with_one_grade_and_with_many(
    admin_client, django_assert_num_queries
):
    # Expected queries, whatever the number of grades:
    #   1. the session
    #   2. the logged-in user
    #   3. the result with its run, case, dataset and failure class, and its outcome
    #   4. its grades with their graders and rubric versions (and rubrics)
    #   5. the content type of case results (the admin's page context; Django caches it per
    #      process after the first page, so the cache is emptied to count the same every time)
    #   6. the same case's results in earlier runs (the "compare with" links)
    # (and one more, the case's history, only for a result graded on an older revision of the case)
    dataset = make_dataset()
    run = make_run(dataset)
    few = make_result(run, make_case(dataset, "few"), {make_grader("g0"): PASS})
    many = make_result(run, make_case(dataset, "many"), {make_grader(f"g{i}"): PASS for i in range(1, 7)})
    for result in (few, many):
        ContentType.objects.clear_cache()
        with django_assert_num_queries(6):
            page_of(admin_client, result)


def test_a_passing_result_says_so_first(admin_client, world):
    verdict = section(page_of(admin_client, world["results"]["passes"]), "result-verdict")
    assert '<span class="outcome outcome-passed">Passed</span>' in verdict
    assert "All 2 grades passed." in verdict


def test_a_failing_result_names_the_graders_that_failed_and_errored(admin_client, world):
    page = page_of(admin_client, world["results"]["fails-and-errs"])
    verdict = section(page, "result-verdict")
    assert '<span class="outcome outcome-failed">Failed</span>' in verdict
    assert "1 of 2 grades failed: answer-exact. 1 errored: tone." in verdict
    assert (
        page.index('id="result-verdict"') < page.index('id="result-grades"') < page.index('id="result-trace"')
    )


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("missing", "No output was produced or submitted, so nothing was graded."),
        ("call-failed", "The candidate&#x27;s call failed, so nothing was graded."),
        ("grade-errs", "1 of 2 grades could not be decided: tone. None failed."),
    ],
)
def test_an_errored_result_says_why(admin_client, world, key, why):
    result = world["results"][key]
    verdict = section(page_of(admin_client, result), "result-verdict")
    assert '<span class="outcome outcome-errored">Errored</span>' in verdict
    assert why in verdict
    if result.error:
        assert html.escape(result.error) in verdict


def test_an_ungraded_result_says_no_grader_applied(admin_client, world):
    page = page_of(admin_client, world["results"]["ungraded"])
    assert '<span class="outcome outcome-ungraded">No grade</span>' in section(page, "result-verdict")
    assert "No grades: no grader applied to this case." in section(page, "result-grades")


def test_the_missing_flag_says_nothing_when_an_output_exists(admin_client, world):
    page = page_of(admin_client, world["results"]["passes"])
    assert "No output was produced or submitted." not in page  # the field's help text, once everywhere
    assert "Missing:" not in page


def test_grades_table_lists_each_grade_with_its_grader_kind_score_and_error(admin_client, world):
    grades = section(page_of(admin_client, world["results"]["grade-errs"]), "result-grades")
    rows = grades.split("<tr")[2:]  # after the header
    assert "<code>tone</code>" in rows[0] and "Errored" in rows[0] and "judge timed out" in rows[0]
    assert "<code>answer-exact</code>" in rows[1] and "exact_match" in rows[1] and "1.00" in rows[1]


def test_a_judge_grade_shows_rationale_and_rubric_version_with_the_raw_answer_behind_a_toggle(
    admin_client, world
):
    version = make_rubric_version(make_endpoint("http://127.0.0.1:9/v1"))
    judge = make_grader("helpful-judge", kind="llm_judge", rubric=version.rubric)
    raw = {"choices": [{"message": {"content": '{"score": 2, "rationale": "curt"}'}}], "model": "judge-model"}
    grade = Grade.objects.create(
        case_result=world["results"]["passes"],
        grader=judge,
        rubric_version=version,
        passed=False,
        score=0.25,
        rationale="Correct but curt.",
        raw_response=raw,
    )
    grades = section(page_of(admin_client, world["results"]["passes"]), "result-grades")
    assert "Correct but curt." in grades
    assert f'<a href="/admin/grading_app/rubricversion/{version.pk}/change/">{version}</a>' in grades
    assert "approved" in grades and "does not count in gate checks" not in grades
    details = grades[grades.index('<details class="judge-raw">') : grades.index("</details>")]
    assert "<summary>The judge's raw answer</summary>" in details
    stored = Grade.objects.get(pk=grade.pk).raw_response  # in the key order the database keeps
    assert html.escape(json.dumps(stored, indent=2)) in details
    assert grades.count(html.escape(json.dumps(stored, indent=2))) == 1  # nowhere but the toggle


def test_untrusted_text_is_escaped(admin_client, world):
    result = world["results"]["fails"]
    CaseResult.objects.filter(pk=result.pk).update(output="<script>alert('out')</script>")
    result.grades.filter(grader__slug="answer-exact").update(rationale="<img src=x onerror=alert(1)>")
    page = page_of(admin_client, result)
    assert "<script>alert(" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#x27;out&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_a_json_output_is_shown_as_pretty_json_never_a_python_repr(admin_client, world):
    output = {"status": "shipped", "eta": None, "items": [1, 2], "gift": True}
    result = world["results"]["passes"]
    CaseResult.objects.filter(pk=result.pk).update(output=output)
    stored = CaseResult.objects.get(pk=result.pk).output  # PostgreSQL's jsonb orders the keys its way
    assert stored == output
    shown = section(page_of(admin_client, result), "result-output")
    assert "(JSON)" in shown
    assert f'<pre class="result-json">{html.escape(json.dumps(stored, indent=2))}</pre>' in shown
    assert "&#x27;status&#x27;" not in shown and "None" not in shown and "True" not in shown


def test_a_text_output_is_shown_as_text(admin_client, world):
    shown = section(page_of(admin_client, world["results"]["passes"]), "result-output")
    assert '<pre class="result-text">No</pre>' in shown
    assert "(JSON)" not in shown


def test_page_shows_the_input_conversation_and_the_expected_in_words_and_as_json(admin_client, world):
    case = world["results"]["passes"].case
    page = page_of(admin_client, world["results"]["passes"])
    conversation = section(page, "result-input")
    assert "<b>user</b><pre>Can I get a refund after 40 days?</pre>" in conversation
    expected = section(page, "result-expected")
    assert "<dt>Reference answer</dt>" in expected and "<pre>No</pre>" in expected
    assert html.escape(json.dumps(case.expected, indent=2)) in expected


def test_expected_keys_are_put_in_words(admin_client, world):
    expected = {
        "contains": ["30 days", "receipt"],
        "must_refuse": True,
        "number": 30,
        "tolerance": 1,
        "tools": ["lookup_order", "issue_refund"],
        "tools_ordered": True,
        "house_rule": "x",
    }
    case = make_case(world["run"].dataset, "worded", expected=expected)
    shown = section(page_of(admin_client, make_result(world["run"], case)), "result-expected")
    assert "<dt>Must contain</dt>\n        <dd><code>30 days</code>, <code>receipt</code></dd>" in shown
    assert "<dt>Must refuse</dt>\n        <dd><code>yes</code></dd>" in shown
    assert "<code>30 ± 1</code>" in shown
    assert "<dt>Expected tool calls, in this order</dt>" in shown
    assert "<dt>Other keys (see the JSON)</dt>\n        <dd><code>house_rule</code></dd>" in shown
    assert "Tolerance" not in shown and "tools_ordered</code>" not in shown  # folded into their rows


def test_a_result_graded_on_an_older_revision_shows_the_case_as_it_was_then(admin_client, world):
    result = world["results"]["passes"]
    datasets.edit_case(result.case, actor=make_user(roles=("Domain expert",)), expected={"answer": "Yes"})
    page = page_of(admin_client, result)
    expected = section(page, "result-expected")
    assert "<pre>No</pre>" in expected and "<pre>Yes</pre>" not in expected
    assert (
        "Graded on revision 1 of the case, shown here as it was then; the case is now at revision 2." in page
    )


def test_page_shows_the_production_signals_labelled_for_people(admin_client, world):
    result = world["results"]["passes"]
    CaseResult.objects.filter(pk=result.pk).update(
        latency_ms=1234.4, ttft_ms=210, input_tokens=500, output_tokens=40, cost_usd=0.00012, retries=2,
        refused=False, escalated=True,
    )  # fmt: skip
    signals = section(page_of(admin_client, result), "result-signals")
    headers = re.findall(r"<th>([^<]+)</th>", signals)
    values = re.findall(r"<td>([^<]+)</td>", signals)
    assert dict(zip(headers, values, strict=True)) == {
        "Latency": "1,234 ms",
        "TTFT": "210 ms",
        "Tokens": "500 in, 40 out",
        "Cost": "$0.00012",
        "Tool calls": "0",
        "Trace steps": "0",
        "Retries": "2",
        "Refused": "no",
        "Escalated": "yes",
    }
    # A value the detectors filled in says so; a reported one does not.
    CaseResult.objects.filter(pk=result.pk).update(refused_detected=True)
    signals = section(page_of(admin_client, result), "result-signals")
    assert "<td>no (detected, not reported)</td>" in signals and "<td>yes</td>" in signals


def test_someone_who_may_not_see_cases_or_graders_gets_the_page_without_those_links(client, world):
    # A release approver sees runs and results, not the cases or graders themselves.
    client.force_login(make_user("carol", roles=("Release approver",), is_staff=True))
    result = world["results"]["fails"]
    page = page_of(client, result)
    assert reverse("admin:datasets_app_case_change", args=[result.case_id]) not in page
    assert "/admin/grading_app/grader/" not in page
    assert "<b>fails</b>" in section(page, "result-verdict")  # the case is named, unlinked
    assert "<code>answer-exact</code>" in section(page, "result-grades")


def test_page_links_to_the_runs_results_and_to_the_case_in_every_run(admin_client, world):
    result = world["results"]["fails"]
    page = page_of(admin_client, result)
    assert f'href="{CHANGELIST}?run={result.run_id}"' in page
    assert f'href="{CHANGELIST}?case__id__exact={result.case_id}"' in page
    assert listed(admin_client, {"case__id__exact": result.case_id}) == ["fails"]


# the run page


def test_run_page_links_to_its_results_by_outcome(admin_client, world):
    run = world["run"]
    page = admin_client.get(reverse("admin:grading_app_run_change", args=[run.pk])).content.decode()
    assert f'<a href="{CHANGELIST}?run={run.pk}">All 7</a>' in page
    for outcome, label in (("passed", "1 passed"), ("failed", "2 failed"), ("errored", "3 errored")):
        link = f'<a class="outcome outcome-{outcome}" href="{CHANGELIST}?run={run.pk}&amp;outcome={outcome}">'
        assert link + label + "</a>" in page
    assert listed(admin_client, {"run": run.pk, "outcome": "failed"}) == ["fails", "fails-and-errs"]


def test_run_page_without_results_says_so(admin_client):
    run = make_run(make_dataset())
    page = admin_client.get(reverse("admin:grading_app_run_change", args=[run.pk])).content.decode()
    assert "No case results yet." in page


def test_a_judge_grade_from_an_unapproved_rubric_version_says_it_does_not_count(admin_client, world):
    version = make_rubric_version(make_endpoint("http://127.0.0.1:9/v1"), approved=False)
    judge = make_grader("draft-judge", kind="llm_judge", rubric=version.rubric)
    Grade.objects.create(
        case_result=world["results"]["passes"], grader=judge, rubric_version=version, passed=True, score=1.0
    )
    grades = section(page_of(admin_client, world["results"]["passes"]), "result-grades")
    assert "draft (does not count in gate checks)" in grades
    assert "judge-raw" not in grades  # no raw answer recorded: no toggle
