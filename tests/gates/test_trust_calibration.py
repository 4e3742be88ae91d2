"""Issue 10, finding 6: a judge's calibration can be required, and is not biased by the queue.

A judge rule may say ``min_labels`` and ``min_kappa``; below either, the rule is undecided and
says why. (The review queue hiding the judge's answer is tested in test_calibration.)
"""

import pytest
from django.core.exceptions import ValidationError

from gates_app.models import Check, GateRule
from gates_app.services import evaluate_check
from grading_app import services
from grading_app.choices import RunStatus
from grading_app.models import CaseResult, Grade, HumanLabel, Run
from tests.factories import (
    make_case,
    make_dataset,
    make_endpoint,
    make_gate,
    make_grader,
    make_rubric_version,
    make_user,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    version = make_rubric_version(make_endpoint("http://127.0.0.1:9/v1"))  # approved
    judge = make_grader("judge", kind="llm_judge", rubric=version.rubric)
    dataset = make_dataset()
    cases = [make_case(dataset, f"t{i}") for i in range(6)]
    rule = {
        "name": "judge pass rate",
        "metric": "pass_rate",
        "grader": judge,
        "threshold": 0.3,
        "min_labels": 4,
        "min_kappa": 0.6,
    }
    gate = make_gate(dataset, rules=[rule])
    return {"version": version, "judge": judge, "dataset": dataset, "cases": cases, "gate": gate}


def judged(world, verdicts: list[bool]) -> tuple[Check, list[Grade]]:
    """A finished run whose judge said ``verdicts`` case by case (graded by hand), decided."""
    run = Run.objects.create(
        dataset=world["dataset"],
        candidate=f"c{Run.objects.count()}",
        status=RunStatus.SUCCEEDED,
        grader_snapshot=services.snapshot_graders(),
    )
    grades = []
    for case, passed in zip(world["cases"], verdicts, strict=True):
        result = CaseResult.objects.create(run=run, case=case, case_revision=case.revision, output="No")
        grades.append(
            Grade.objects.create(
                case_result=result,
                grader=world["judge"],
                rubric_version=world["version"],
                score=float(passed),
                passed=passed,
            )
        )
    Check.objects.create(gate=world["gate"], candidate=run.candidate, run=run)
    return evaluate_check(run), grades


def label(grades: list[Grade], human: list[bool]) -> None:
    reviewer = make_user(roles=("Reviewer",))
    for grade, passed in zip(grades, human, strict=False):
        HumanLabel.objects.create(grade=grade, reviewer=reviewer, passed=passed)


def test_a_judge_rule_without_enough_human_labels_is_undecided(world):
    check, grades = judged(world, [True, False, True, False, True, True])
    (rule,) = check.rule_results
    assert (check.verdict, rule["outcome"]) == ("inconclusive", "undecided")
    assert rule["note"].endswith("has 0 human label(s); the rule needs 4")

    label(grades, [True, False, True])
    check, _ = judged(world, [True, False, True, False, True, True])
    assert check.rule_results[0]["note"].endswith("has 3 human label(s); the rule needs 4")


def test_a_judge_that_disagrees_with_people_cannot_decide(world):
    _, grades = judged(world, [True, False, True, False, True, True])
    label(grades, [False, True, True, False, False, True])  # agreement by chance, or worse

    check, _ = judged(world, [True, False, True, False, True, True])

    (rule,) = check.rule_results
    assert rule["outcome"] == "undecided"
    assert "Cohen's kappa with human labels is" in rule["note"]
    assert "below 0.60" in rule["note"]


def test_a_calibrated_judge_decides(world):
    _, grades = judged(world, [True, False, True, False, True, True])
    label(grades, [True, False, True, False, True, True])

    check, _ = judged(world, [True, False, True, False, True, True])

    assert (check.verdict, check.rule_results[0]["outcome"], check.rule_results[0]["note"]) == (
        "pass",
        "pass",
        "",
    )


def test_calibration_is_only_asked_of_judge_rules(world):
    exact = make_grader()
    rule = GateRule(
        gate=world["gate"], name="exact", metric="pass_rate", grader=exact, threshold=0.9, min_kappa=0.5
    )
    with pytest.raises(ValidationError, match="judge grader"):
        rule.full_clean()
