"""Judge calibration (agreement, Cohen's kappa) and the human review queue that feeds it."""

from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from datasets_app.models import Case
from grading_app import services
from grading_app.calibration import agreement, calibrate, cohen_kappa
from grading_app.choices import RunStatus
from grading_app.models import CaseResult, Grade, Grader, HumanLabel, RubricVersion, Run
from grading_app.services.labels import review_queue
from tests.factories import make_case, make_dataset, make_grader, make_user

pytestmark = pytest.mark.django_db

T, F = True, False


# --- the arithmetic ----------------------------------------------------------------------


def test_agreement_is_the_share_of_pairs_that_say_the_same():
    # 3 of the 5 pairs agree: (T,T), (F,F), (T,T).
    assert agreement([(T, T), (T, F), (F, F), (T, T), (F, T)]) == pytest.approx(0.6)
    assert agreement([(T, T)]) == 1.0
    assert agreement([]) is None


def test_cohen_kappa_discounts_chance_agreement():
    # 10 pairs (judge, human): 4 x (T,T), 1 x (T,F), 2 x (F,T), 3 x (F,F).
    # observed  p_o = (4 + 3) / 10 = 0.7
    # judge passes 5/10 = 0.5; human passes 6/10 = 0.6
    # chance    p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.30 + 0.20 = 0.5
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    pairs = [(T, T)] * 4 + [(T, F)] + [(F, T)] * 2 + [(F, F)] * 3
    assert cohen_kappa(pairs) == pytest.approx(0.4)


def test_cohen_kappa_is_minus_one_for_perfect_disagreement_and_one_for_perfect_agreement():
    # (T,F), (F,T): p_o = 0; each rater passes 1/2, so p_e = 0.25 + 0.25 = 0.5;
    # kappa = (0 - 0.5) / 0.5 = -1.
    assert cohen_kappa([(T, F), (F, T)]) == pytest.approx(-1.0)
    # (T,T), (F,F): p_o = 1; p_e = 0.5; kappa = (1 - 0.5) / 0.5 = 1.
    assert cohen_kappa([(T, T), (F, F)]) == pytest.approx(1.0)


def test_cohen_kappa_is_zero_when_one_rater_is_constant_but_the_other_is_not():
    # (T,T), (T,T), (T,F): p_o = 2/3; judge passes 3/3, human 2/3;
    # p_e = 1 * 2/3 + 0 * 1/3 = 2/3; kappa = (2/3 - 2/3) / (1 - 2/3) = 0.
    assert cohen_kappa([(T, T), (T, T), (T, F)]) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    "pairs",
    [
        [],  # no pairs at all
        [(T, T)] * 3,  # both always pass: p_e = 1 * 1 = 1, so 1 - p_e = 0
        [(F, F)] * 3,  # both always fail: p_e = 0 * 0 + 1 * 1 = 1
    ],
)
def test_cohen_kappa_is_none_when_undefined(pairs):
    assert cohen_kappa(pairs) is None


# --- calibrate(version) against the database ---------------------------------------------


@pytest.fixture
def rubric_version(rubric_owner: AbstractUser) -> RubricVersion:
    endpoint = services.save_endpoint(name="judge", base_url="http://127.0.0.1:9/v1")
    rubric = services.save_rubric(slug="refunds", name="Refund answers", owner=rubric_owner)
    return services.create_rubric_version(
        rubric, actor=make_user(), criteria="Says no to refunds after 30 days.", endpoint=endpoint, model="j"
    )


@pytest.fixture
def judge(rubric_version: RubricVersion) -> Grader:
    return make_grader("judge", kind="llm_judge", rubric=rubric_version.rubric)


def make_results(n: int) -> list[CaseResult]:
    """``n`` case results of one finished run, built by hand (no judge is called)."""
    dataset = make_dataset()
    run = Run.objects.create(dataset=dataset, candidate="v1", status=RunStatus.SUCCEEDED)
    return [
        CaseResult.objects.create(run=run, case=case, case_revision=case.revision, output="No")
        for case in (make_case(dataset, f"c{i}") for i in range(n))
    ]


def judge_grade(result: CaseResult, judge: Grader, version: RubricVersion, passed: bool | None) -> Grade:
    score = None if passed is None else float(passed)
    error = "judge timed out" if passed is None else ""
    return Grade.objects.create(
        case_result=result, grader=judge, rubric_version=version, passed=passed, score=score, error=error
    )


def test_calibrate_compares_the_judge_with_human_labels_and_code_graders(
    judge, rubric_version, reviewer, django_assert_num_queries
):
    results = make_results(5)
    exact = make_grader("answer-exact")
    judge_says = [T, T, F, F]
    human_says = [T, F, F, F]
    code_says = [T, T, T, T]
    for result, j, h, c in zip(results, judge_says, human_says, code_says, strict=False):
        grade = judge_grade(result, judge, rubric_version, j)
        HumanLabel.objects.create(grade=grade, reviewer=reviewer, passed=h)
        Grade.objects.create(case_result=result, grader=exact, passed=c, score=float(c))
    # The fifth result's judge errored: neither its label nor its code grade is a pair.
    errored = judge_grade(results[4], judge, rubric_version, None)
    HumanLabel.objects.create(grade=errored, reviewer=reviewer, passed=True)
    Grade.objects.create(case_result=results[4], grader=exact, passed=False, score=0.0)

    # Three queries: labels, judged grades, other graders' grades on the same results.
    with django_assert_num_queries(3):
        result = calibrate(rubric_version)

    # Human: pairs (T,T), (T,F), (F,F), (F,F): p_o = 3/4 = 0.75.
    # judge passes 2/4 = 0.5, human 1/4 = 0.25; p_e = 0.5 * 0.25 + 0.5 * 0.75 = 0.5;
    # kappa = (0.75 - 0.5) / (1 - 0.5) = 0.5.
    assert result["human"] == {"n": 4, "agreement": pytest.approx(0.75), "kappa": pytest.approx(0.5)}
    # Code grader: pairs (T,T), (T,T), (F,T), (F,T): p_o = 2/4 = 0.5.
    # judge passes 0.5, code 1.0; p_e = 0.5 * 1 + 0.5 * 0 = 0.5; kappa = (0.5 - 0.5) / 0.5 = 0.
    assert result["code"] == {"answer-exact": {"n": 4, "agreement": 0.5, "kappa": pytest.approx(0.0)}}


def test_calibrate_counts_only_the_given_rubric_version(judge, rubric_version, reviewer):
    results = make_results(2)
    other_version = services.create_rubric_version(
        rubric_version.rubric,
        actor=make_user(),
        criteria="Something else.",
        endpoint=rubric_version.endpoint,
        model="j",
    )
    mine = judge_grade(results[0], judge, rubric_version, True)
    HumanLabel.objects.create(grade=mine, reviewer=reviewer, passed=True)
    other_judge = make_grader("judge-2", kind="llm_judge", rubric=rubric_version.rubric)
    theirs = judge_grade(results[1], other_judge, other_version, True)
    HumanLabel.objects.create(grade=theirs, reviewer=reviewer, passed=False)

    # One pair each. (T,T): both always pass, p_e = 1, kappa undefined.
    assert calibrate(rubric_version)["human"] == {"n": 1, "agreement": 1.0, "kappa": None}
    # (T,F): p_o = 0; judge passes 1/1, human 0/1; p_e = 1 * 0 + 0 * 1 = 0; kappa = 0 / 1 = 0.
    assert calibrate(other_version)["human"] == {"n": 1, "agreement": 0.0, "kappa": 0.0}


def test_calibrate_without_labels_or_code_graders_is_empty(rubric_version):
    assert calibrate(rubric_version) == {"human": {"n": 0, "agreement": None, "kappa": None}, "code": {}}


def test_rubric_version_change_page_shows_the_calibration_table(
    client, judge, rubric_version, rubric_owner, reviewer
):
    results = make_results(2)
    for result, j, h in zip(results, [T, F], [T, T], strict=True):
        HumanLabel.objects.create(
            grade=judge_grade(result, judge, rubric_version, j), reviewer=reviewer, passed=h
        )
    client.force_login(rubric_owner)
    page = client.get(reverse("admin:grading_app_rubricversion_change", args=[rubric_version.pk]))
    html = page.content.decode()
    assert "Cohen&#x27;s kappa" in html or "Cohen's kappa" in html
    # Pairs (T,T), (F,T): agreement 1/2; the human always passes, so p_e = 0.5 * 1 = 0.5 and
    # kappa = (0.5 - 0.5) / 0.5 = 0.
    assert "<td>human labels</td><td>2</td><td>50%</td><td>0.00</td>" in html


# --- the review queue --------------------------------------------------------------------

REVIEW = "admin:grading_app_humanlabel_review"


def label_post(grade: Grade, passed: str = "false", **extra: Any) -> dict[str, Any]:
    return {"grade": grade.pk, "passed": passed, "score": "", "note": "", **extra}


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_reviewer_labels_a_judged_grade_and_the_queue_empties(client, judge, rubric_version, reviewer):
    (result,) = make_results(1)
    grade = judge_grade(result, judge, rubric_version, True)
    Grade.objects.filter(pk=grade.pk).update(rationale="Polite and cites the 30-day policy.")
    Grade.objects.create(case_result=result, grader=make_grader("answer-exact"), passed=True, score=1.0)
    client.force_login(reviewer)

    page = client.get(reverse(REVIEW))
    assert page.status_code == 200
    assert page.context["grade"] == grade  # the judged grade, never the code grader's
    assert "1 judged result(s) wait for your label." in page.content.decode()
    assert "Says no to refunds after 30 days." in page.content.decode()  # the judge's rubric
    # The judge's answer stays hidden until the label is saved: it would anchor the label.
    assert "Polite and cites the 30-day policy." not in page.content.decode()
    assert "the judge said" not in page.content.decode()
    assert "&quot;messages&quot;" in page.content.decode() and "{&#x27;" not in page.content.decode()  # JSON

    response = client.post(
        reverse(REVIEW), label_post(grade, "false", score="0.2", note="Misses the 30-day rule."), follow=True
    )
    assert response.redirect_chain == [(reverse(REVIEW), 302)]
    label = HumanLabel.objects.get()
    assert (label.grade, label.reviewer, label.passed, label.score, label.note) == (
        grade,
        reviewer,
        False,
        0.2,
        "Misses the 30-day rule.",
    )
    assert (
        "Label saved for case c0: you said fail; the judge said pass (score 1.0): "
        "Polite and cites the 30-day policy. Next one:"
    ) in page_messages(response)
    assert response.context["grade"] is None
    assert "Nothing to review" in response.content.decode()


def test_review_queue_moves_on_to_the_next_unlabelled_grade(client, judge, rubric_version, reviewer):
    grades = {judge_grade(r, judge, rubric_version, True) for r in make_results(2)}
    client.force_login(reviewer)
    first = client.get(reverse(REVIEW))
    assert "2 judged result(s) wait" in first.content.decode()
    shown = first.context["grade"]
    assert shown in grades

    after = client.post(reverse(REVIEW), label_post(shown, "true"), follow=True)
    assert after.context["grade"] == (grades - {shown}).pop()
    assert "1 judged result(s) wait" in after.content.decode()


def test_review_queue_is_per_reviewer(client, judge, rubric_version, reviewer):
    (result,) = make_results(1)
    grade = judge_grade(result, judge, rubric_version, True)
    services.label_grade(grade, actor=reviewer, passed=True)
    second_reviewer = make_user(roles=("Reviewer",), is_staff=True)
    client.force_login(second_reviewer)
    assert client.get(reverse(REVIEW)).context["grade"] == grade


def test_domain_expert_cannot_open_or_post_to_the_review_queue(client, judge, rubric_version, expert):
    (result,) = make_results(1)
    grade = judge_grade(result, judge, rubric_version, True)
    client.force_login(expert)
    assert client.get(reverse(REVIEW)).status_code == 403
    assert client.post(reverse(REVIEW), label_post(grade)).status_code == 403
    assert not HumanLabel.objects.exists()


def test_a_second_label_by_the_same_reviewer_is_refused_with_a_message(
    client, judge, rubric_version, reviewer
):
    (result,) = make_results(1)
    grade = judge_grade(result, judge, rubric_version, True)
    client.force_login(reviewer)
    client.post(reverse(REVIEW), label_post(grade, "true"))
    response = client.post(reverse(REVIEW), label_post(grade, "false"), follow=True)
    assert "You already labelled this result." in page_messages(response)
    assert list(HumanLabel.objects.values_list("reviewer", "passed")) == [(reviewer.pk, True)]


def test_label_grade_refuses_users_without_the_permission(judge, rubric_version, expert):
    (result,) = make_results(1)
    grade = judge_grade(result, judge, rubric_version, True)
    with pytest.raises(PermissionDenied, match="not allowed"):
        services.label_grade(grade, actor=expert, passed=True)
    assert not HumanLabel.objects.exists()


def test_a_code_graders_grade_posted_to_the_queue_is_not_labelled(client, judge, rubric_version, reviewer):
    # Admin walk M1: the queue offers judged grades only; a raw grade id in its POST did not.
    (result,) = make_results(1)
    judge_grade(result, judge, rubric_version, True)
    code = Grade.objects.create(
        case_result=result, grader=make_grader("answer-exact"), passed=True, score=1.0
    )
    client.force_login(reviewer)

    response = client.post(reverse(REVIEW), label_post(code, "true"), follow=True)

    assert "Only a judge's verdicts are labelled; answer-exact is not a judge." in page_messages(response)
    assert not HumanLabel.objects.exists()


@pytest.mark.parametrize("what", ["code grader", "judge error"])
def test_label_grade_refuses_what_the_queue_would_not_offer(judge, rubric_version, reviewer, what):
    (result,) = make_results(1)
    if what == "code grader":
        grade = Grade.objects.create(case_result=result, grader=make_grader("answer-exact"), passed=False)
    else:
        grade = judge_grade(result, judge, rubric_version, None)

    assert not review_queue(reviewer).filter(pk=grade.pk).exists()
    with pytest.raises(ValidationError, match=r"not a judge|nothing to label"):
        services.label_grade(grade, actor=reviewer, passed=True)
    assert not HumanLabel.objects.exists()


def test_a_reviewer_of_a_conversation_sees_the_conversation_the_judge_read(
    client, judge, rubric_version, reviewer
):
    # Admin walk M4: the queue showed a multi-turn case's scripted turns and its last answer only,
    # while the judge read every turn: the label and the judge's verdict judged different things.
    dataset = make_dataset()
    case = make_case(dataset, "lost-parcel", active=False)
    Case.objects.filter(pk=case.pk).update(input={"turns": ["Hi", "Where is parcel A-17?"]})
    run = Run.objects.create(dataset=dataset, candidate="v1", status=RunStatus.SUCCEEDED)
    played = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! Shall I look up an order?"},
        {"role": "user", "content": "Where is parcel A-17?"},
        {"role": "assistant", "content": "A-17 is lost; I have opened a claim."},
    ]
    result = CaseResult.objects.create(
        run=run, case=case, case_revision=1, output="A-17 is lost; I have opened a claim.", trace=played
    )
    judge_grade(result, judge, rubric_version, True)
    client.force_login(reviewer)

    page = client.get(reverse(REVIEW)).content.decode()

    assert 'id="review-conversation"' in page
    assert "assistant: Hello! Shall I look up an order?" in page  # an earlier turn the judge saw
    assert "user: Where is parcel A-17?" in page and "The last answer" in page
