"""Judges under faults: a flaky endpoint still completes every grade; a dead one never passes."""

import pytest

from gates_app.choices import Verdict
from gates_app.models import Check, GateRule
from gates_app.services import request_check
from grading_app.models import Grade
from tests.factories import make_endpoint, make_grader, make_rubric_version, make_scenario
from tests.fake_openai import json_reply

pytestmark = pytest.mark.django_db

KINDS = ("429", "500", "timeout", "bad_json")


def gate_with_judge(fake, n_cases: int, retries: int):
    """A gate whose only block rule is the judge's pass rate."""
    s = make_scenario(n_trusted=n_cases, n_monitoring=0)
    s["gate"].rules.filter(grader__slug="answer-exact").delete()
    endpoint = make_endpoint(fake.base_url, timeout_s=0.3, max_retries=retries, max_concurrency=8)
    version = make_rubric_version(endpoint)
    judge = make_grader("helpful", kind="llm_judge", rubric=version.rubric)
    GateRule.objects.create(
        gate=s["gate"],
        name="judge says helpful",
        metric="pass_rate",
        grader=judge,
        threshold=0.9,
        severity="block",
        position=9,
    )
    fake.default(json_reply({"score": 1, "passed": True, "rationale": "fine"}))
    return s


def outputs(cases):
    # Distinct outputs: every case is a live judge call, none answered from the cache.
    return [{"case": c.key, "output": f"No ({c.key})", "metrics": {"latency_ms": 500}} for c in cases]


def test_a_judge_endpoint_failing_30_percent_of_calls_still_completes_every_grade(
    fake_openai, django_capture_on_commit_callbacks
):
    s = gate_with_judge(fake_openai, 20, retries=6)
    fake_openai.faults(rate=0.3, kinds=KINDS, seed=7, timeout_s=2)
    with django_capture_on_commit_callbacks(execute=True):
        check, _ = request_check(gate=s["gate"], candidate="v1", outputs=outputs(s["cases"]))
    grades = Grade.objects.filter(case_result__run=check.run, grader__slug="helpful")
    assert grades.count() == 20
    assert all(g.passed is True and g.error == "" for g in grades)
    injected = sum(1 for r in fake_openai.requests if r["injected"])
    assert injected >= 3  # the faults really happened and were absorbed by retries
    assert Check.objects.get(pk=check.pk).verdict == Verdict.PASS


def test_a_judge_endpoint_failing_every_call_gives_grade_errors_and_an_inconclusive_verdict(
    fake_openai, django_capture_on_commit_callbacks
):
    s = gate_with_judge(fake_openai, 4, retries=1)
    fake_openai.faults(rate=1.0, kinds=KINDS, seed=3, timeout_s=2)
    with django_capture_on_commit_callbacks(execute=True):
        check, _ = request_check(gate=s["gate"], candidate="v1", outputs=outputs(s["cases"]))
    grades = Grade.objects.filter(case_result__run=check.run, grader__slug="helpful")
    assert grades.count() == 4
    assert all(g.passed is None and g.error for g in grades)
    check = Check.objects.get(pk=check.pk)
    assert check.verdict == Verdict.INCONCLUSIVE
    rule = next(r for r in check.rule_results if r["name"] == "judge says helpful")
    assert rule["outcome"] == "undecided" and rule["errored"] == 4
