"""Only signed-off rubric versions let a judge decide a release (DESIGN.md section 4)."""

from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser

from datasets_app.models import Case, Dataset
from gates_app.choices import Outcome, Verdict
from gates_app.models import Check, Gate
from gates_app.services import evaluate_check
from grading_app import services
from grading_app.choices import RubricState, RunStatus
from grading_app.models import CaseResult, Grade, Grader, RubricVersion, Run
from tests.factories import make_case, make_dataset, make_gate, make_grader, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def author() -> AbstractUser:
    return make_user("author", roles=("Rubric owner",))


@pytest.fixture
def version(rubric_owner: AbstractUser, author: AbstractUser) -> RubricVersion:
    endpoint = services.save_endpoint(name="judge", base_url="http://127.0.0.1:9/v1")
    rubric = services.save_rubric(slug="refunds", name="Refund answers", owner=rubric_owner)
    return services.create_rubric_version(
        rubric, actor=author, criteria="Says no to refunds after 30 days.", endpoint=endpoint, model="j"
    )


@pytest.fixture
def judge(version: RubricVersion) -> Grader:
    return make_grader("judge", kind="llm_judge", rubric=version.rubric)


@pytest.fixture
def scenario(judge: Grader) -> dict[str, Any]:
    dataset = make_dataset()
    cases = [make_case(dataset, f"t{i}") for i in range(4)]
    rule = {"name": "judge pass rate", "metric": "pass_rate", "grader": judge, "threshold": 0.9}
    gate = make_gate(dataset, rules=[rule])
    return {"dataset": dataset, "cases": cases, "gate": gate}


def judged_run(dataset: Dataset, cases: list[Case], judge: Grader, *also: Grader) -> Run:
    """A finished run with the grader snapshot a real run takes, in which the judge (and any
    ``also`` grader) passed every case. Graded by hand: no judge is called."""
    run = Run.objects.create(
        dataset=dataset,
        candidate=f"candidate-{Run.objects.count() + 1}",
        status=RunStatus.SUCCEEDED,
        grader_snapshot=services.snapshot_graders(),
    )
    pinned = {g["id"]: g["rubric_version"] for g in run.grader_snapshot}
    for case in cases:
        result = CaseResult.objects.create(run=run, case=case, case_revision=case.revision, output="No")
        for grader in (judge, *also):
            Grade.objects.create(
                case_result=result,
                grader=grader,
                rubric_version_id=pinned[grader.pk],
                score=1.0,
                passed=True,
            )
    return run


def decide(gate: Gate, run: Run) -> Check:
    Check.objects.create(gate=gate, candidate=run.candidate, run=run)
    return evaluate_check(run)


def checked(scenario: dict[str, Any], judge: Grader) -> Check:
    return decide(scenario["gate"], judged_run(scenario["dataset"], scenario["cases"], judge))


def move_to(version: RubricVersion, state: str, author: AbstractUser) -> None:
    owner = version.rubric.owner
    if state == RubricState.DRAFT:
        return
    services.submit_rubric_version(version, actor=author)
    if state == RubricState.REJECTED:
        services.reject_rubric_version(version, actor=owner, note="Too lenient.")
    elif state in (RubricState.APPROVED, RubricState.RETIRED):
        services.approve_rubric_version(version, actor=owner)
    if state == RubricState.RETIRED:
        services.retire_rubric_version(version, actor=owner)


@pytest.mark.parametrize("state", [RubricState.DRAFT, RubricState.SUBMITTED, RubricState.REJECTED])
def test_judge_rule_on_an_unapproved_rubric_is_undecided_even_when_every_grade_passed(
    scenario, judge, version, author, state
):
    move_to(version, state, author)
    check = checked(scenario, judge)
    (rule,) = check.rule_results
    assert rule["value"] == 1.0  # the judge passed every case ...
    assert rule["outcome"] == Outcome.UNDECIDED  # ... but its rubric was never signed off
    assert "not approved" in rule["note"]
    assert "refunds v1" in rule["note"]
    assert check.verdict == Verdict.INCONCLUSIVE
    assert check.release_allowed is False


def test_once_approved_a_new_check_of_the_same_grades_passes(scenario, judge, version, author):
    move_to(version, RubricState.SUBMITTED, author)
    before = checked(scenario, judge)
    assert before.verdict == Verdict.INCONCLUSIVE

    services.approve_rubric_version(version, actor=version.rubric.owner)
    after = checked(scenario, judge)
    (rule,) = after.rule_results
    assert (rule["outcome"], rule["note"]) == (Outcome.PASS, "")
    assert after.verdict == Verdict.PASS
    assert after.release_allowed is True
    # The earlier verdict was decided and stays what it was.
    assert evaluate_check(before.run).verdict == Verdict.INCONCLUSIVE
    assert Check.objects.get(pk=before.pk).verdict == Verdict.INCONCLUSIVE


def test_run_with_a_version_retired_after_approval_is_undecided(scenario, judge, version, author):
    move_to(version, RubricState.APPROVED, author)
    # The run used the approved version, which is retired before the check is decided.
    run = judged_run(scenario["dataset"], scenario["cases"], judge)
    services.retire_rubric_version(version, actor=version.rubric.owner)
    check = decide(scenario["gate"], run)
    assert check.verdict == Verdict.INCONCLUSIVE
    assert "retired, not approved" in check.rule_results[0]["note"]


def test_rules_on_other_graders_are_not_blocked_by_an_unapproved_judge(scenario, judge, version):
    exact = make_grader("answer-exact")
    gate = make_gate(
        scenario["dataset"],
        rules=[{"name": "exact pass rate", "metric": "pass_rate", "grader": exact, "threshold": 0.9}],
    )
    run = judged_run(scenario["dataset"], scenario["cases"], judge, exact)
    assert version.state == RubricState.DRAFT
    assert decide(gate, run).verdict == Verdict.PASS
