"""End to end: a promptfoo suite with llm-rubric assertions, imported, grades through the judge path
(the real openai client against tests/fake_openai.py) and decides a gate once its rubric draft
is signed off by the rubric's owner, and not before."""

import io

import pytest
from django.core.management import call_command

from datasets_app import services as datasets
from datasets_app.models import Case
from gates_app.choices import Outcome, Verdict
from gates_app.services import request_check
from grading_app import services as grading
from grading_app.models import Grade, Grader, RubricVersion
from tests.factories import make_endpoint, make_gate, make_user
from tests.fake_openai import json_reply

pytestmark = pytest.mark.django_db

SUITE = """\
prompts: ["Customer: {{message}}"]
tests:
  - description: late parcel
    vars: {message: "My parcel is late again!"}
    assert:
      - type: llm-rubric
        value: Apologises and offers a concrete next step
      - type: icontains
        value: sorry
  - description: rude customer
    vars: {message: "Your service is useless."}
    assert:
      - type: llm-rubric
        value: Stays calm and offers help
  - description: opening hours
    vars: {message: "When are you open?"}
    assert:
      - type: icontains
        value: monday
"""
PASS = {"score": 1, "passed": True, "rationale": "Does what the case's rubric asks."}


@pytest.fixture
def imported(tmp_path, fake_openai, rubric_owner):
    importer = make_user("importer", roles=("Dataset owner", "Rubric owner"), is_staff=True)
    reviewer = make_user("reviewer2", roles=("Reviewer",))
    dataset = datasets.save_dataset(slug="support", name="Support", owner=importer)
    make_endpoint(fake_openai.base_url, name="judge")
    path = tmp_path / "promptfooconfig.yaml"
    path.write_text(SUITE)
    call_command(
        "import_cases",
        "support",
        str(path),
        "--format",
        "promptfoo",
        "--as",
        "importer",
        "--judge-endpoint",
        "judge",
        "--judge-model",
        "judge-model",
        "--rubric-owner",
        rubric_owner.username,
        stdout=io.StringIO(),
    )
    for case in Case.objects.filter(dataset=dataset):  # a reviewer audits what the importer brought
        datasets.audit_case(datasets.submit_case(case, actor=importer), actor=reviewer)
    judge = Grader.objects.get(slug="promptfoo-llm-rubric")
    gate = make_gate(
        dataset, rules=[{"name": "rubric holds", "metric": "pass_rate", "grader": judge, "threshold": 1}]
    )
    return {"importer": importer, "gate": gate, "judge": judge}


def check(gate, capture, candidate: str):
    outputs = [
        {"case": "late-parcel", "output": "Sorry! I have sent a replacement today."},
        {"case": "rude-customer", "output": "I understand. How can I help you?"},
        {"case": "opening-hours", "output": "Monday to Friday, nine to five."},
    ]
    with capture(execute=True):
        made, _ = request_check(gate=gate, candidate=candidate, outputs=outputs)
    made.refresh_from_db()
    return made


def test_the_imported_judge_decides_only_once_its_rubric_draft_is_signed_off(
    imported, fake_openai, rubric_owner, django_capture_on_commit_callbacks
):
    fake_openai.default(json_reply(PASS))
    version = RubricVersion.objects.get(rubric=imported["judge"].rubric)

    before = check(imported["gate"], django_capture_on_commit_callbacks, "v1")

    assert before.verdict == Verdict.INCONCLUSIVE and before.release_allowed is False
    (rule,) = before.rule_results
    assert rule["outcome"] == Outcome.UNDECIDED
    assert "not approved" in rule["note"] and "promptfoo-llm-rubric v1" in rule["note"]

    version = grading.submit_rubric_version(version, actor=imported["importer"])
    grading.approve_rubric_version(version, actor=rubric_owner, note="read the imported criteria")
    after = check(imported["gate"], django_capture_on_commit_callbacks, "v2")

    assert after.verdict == Verdict.PASS and after.release_allowed is True
    # The judge reads the cases that carry an llm-rubric, not the one that does not.
    grades = Grade.objects.filter(case_result__run=after.run, grader=imported["judge"])
    assert sorted((g.case_result.case.key, g.passed, g.rubric_version_id) for g in grades) == [
        ("late-parcel", True, version.pk),
        ("rude-customer", True, version.pk),
    ]
    # The judge saw each case's own rubric text, as promptfoo's llm-rubric would.
    prompts = [r["body"]["messages"][0]["content"] for r in fake_openai.requests]
    assert any("Apologises and offers a concrete next step" in p for p in prompts)
    assert any("Stays calm and offers help" in p for p in prompts)


def test_a_signed_off_imported_judge_fails_an_answer_that_misses_its_rubric(
    imported, fake_openai, rubric_owner, django_capture_on_commit_callbacks
):
    version = RubricVersion.objects.get(rubric=imported["judge"].rubric)
    grading.approve_rubric_version(
        grading.submit_rubric_version(version, actor=imported["importer"]), actor=rubric_owner
    )
    fake_openai.default(json_reply({"score": 0, "passed": False, "rationale": "No next step."}))

    made = check(imported["gate"], django_capture_on_commit_callbacks, "v3")

    assert made.verdict == Verdict.FAIL
    assert made.rule_results[0]["outcome"] == Outcome.FAIL
