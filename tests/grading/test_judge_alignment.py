"""Judge alignment (issue 14): where people's labels disagree with a judge, a draft rubric
version takes those cases as few-shot examples, and its agreement is measured on labels it was
not built from before anyone may sign it off."""

import re

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from grading_app import alignment, services
from grading_app.choices import AlignmentStatus, RubricState, RunStatus
from grading_app.models import AlignmentProposal, CaseResult, Grade, RubricVersion, Run
from grading_app.services.alignment import measure_proposal, propose_aligned_version, remeasure_alignment
from grading_app.services.rubrics import alignment_refusal, transition_refusal
from tests.factories import (
    make_case,
    make_dataset,
    make_endpoint,
    make_grader,
    make_rubric_version,
    make_user,
)
from tests.fake_openai import fault, json_reply

pytestmark = pytest.mark.django_db

# 20 judged answers. The judge (v1) passes every answer that says "sorry"; people pass the
# ones that give the 30-day policy, whether or not they apologise. They disagree on 10.
ANSWERS = [
    *(f"Sorry, refunds close after 30 days (order {i})." for i in range(5)),  # judge T, people T
    *(f"Sorry, I cannot help with order {i}." for i in range(5, 10)),  # judge T, people F: disagree
    *(f"Refunds close after 30 days (order {i})." for i in range(10, 15)),  # judge F, people T: disagree
    *(f"Please contact us about order {i}." for i in range(15, 20)),  # judge F, people F
]


def people_pass(answer: str) -> bool:
    return "30 days" in answer


@pytest.fixture
def world(fake_openai, rubric_owner, reviewer):
    """An approved rubric version whose judge graded ANSWERS, every grade labelled by a reviewer."""
    endpoint = make_endpoint(fake_openai.base_url, max_concurrency=4)
    v1 = make_rubric_version(endpoint, owner=rubric_owner, criteria="States the 30-day refund policy.")
    judge = make_grader("judge", kind="llm_judge", rubric=v1.rubric)
    dataset = make_dataset()
    run = Run.objects.create(dataset=dataset, candidate="v1", status=RunStatus.SUCCEEDED)
    grades = []
    for i, answer in enumerate(ANSWERS):
        case = make_case(dataset, f"c{i}")
        result = CaseResult.objects.create(run=run, case=case, case_revision=case.revision, output=answer)
        passed = "Sorry" in answer
        grade = Grade.objects.create(
            case_result=result, grader=judge, rubric_version=v1, passed=passed, score=float(passed)
        )
        services.label_grade(grade, actor=reviewer, passed=people_pass(answer), note="policy stated?")
        grades.append(grade)
    return {"v1": v1, "grades": grades, "endpoint": endpoint, "owner": rubric_owner, "judge": judge}


def answer_in(prompt: str) -> str:
    return re.search(r"<untrusted-output-\w+>\n(.*)\n</untrusted-output-", prompt, re.S).group(1)


def aligned_judge(body):
    """The judge model at the fake endpoint: shown examples, it follows them (passes the policy);
    without examples it passes apologies, as v1's judge did."""
    prompt = body["messages"][-1]["content"]
    answer = answer_in(prompt)
    passed = people_pass(answer) if "Examples of graded answers" in prompt else "Sorry" in answer
    return json_reply({"score": float(passed), "passed": passed, "rationale": "scripted"})


def test_people_decide_by_majority_and_a_tie_is_no_verdict():
    labels = [
        (1, True, 1.0, "ok"),
        (1, True, None, ""),
        (1, False, 0.0, "no"),
        (2, True, None, ""),
        (2, False, None, ""),
    ]
    verdicts = alignment.human_verdicts(labels)
    assert verdicts == {1: (True, 0.5, ("ok", "no"))}  # grade 2: one pass, one fail


def test_the_split_holds_out_both_kinds_of_case_and_never_overlaps():
    labelled = [
        alignment.Labelled(
            i,
            judge_passed=i % 2 == 0,
            human_passed=i % 4 == 0,
            human_score=None,
            notes=(),
            case_input={},
            output="x",
        )
        for i in range(40)
    ]
    build, held = alignment.split(7, labelled)
    assert {x.grade_id for x in build}.isdisjoint({x.grade_id for x in held})
    assert len(build) + len(held) == 40
    # The judge passes even i, people i divisible by 4: they disagree on i = 2 mod 4 (10 cases)
    # and agree on 30; ceil(0.3 x 10) = 3 and ceil(0.3 x 30) = 9 are held out.
    assert sum(x.disagrees for x in held) == 3 and sum(not x.disagrees for x in held) == 9
    assert alignment.split(7, list(reversed(labelled))) == (build, held)  # the order given does not matter
    assert alignment.split(8, labelled)[1] != held  # each version has its own split


def test_a_proposal_learns_only_from_disagreements_outside_the_held_out_labels(world, expert):
    v1 = world["v1"]
    proposal = propose_aligned_version(v1, actor=world["owner"])
    draft = proposal.proposed
    assert draft.rubric_id == v1.rubric_id and draft.number == v1.number + 1
    assert draft.state == RubricState.DRAFT and draft.author == world["owner"]
    assert (draft.criteria, draft.prompt_template, draft.model) == (v1.criteria, v1.prompt_template, v1.model)
    held, built = set(proposal.held_out), set(proposal.built_from)
    assert held.isdisjoint(built) and len(held | built) == 20
    # ceil(0.3 x 10) = 3 of the 10 disagreements and 3 of the 10 agreements are held out.
    assert len(held) == 6
    by_answer = {g.case_result.output: g.pk for g in world["grades"]}
    shown = {by_answer[example["output"]] for example in draft.few_shot}
    disagreeing = {g.pk for g in world["grades"] if g.passed != people_pass(g.case_result.output)}
    assert shown and shown <= disagreeing - held  # only build-set disagreements are shown
    assert len(shown) == min(alignment.MAX_EXAMPLES, 7)
    for example in draft.few_shot:
        assert example["passed"] is people_pass(example["output"])
        assert example["why"].startswith("People reviewing this answer judged it")
    assert proposal.human == {
        str(g): people_pass(ANSWERS[[x.pk for x in world["grades"]].index(g)]) for g in held
    }
    assert proposal.status == AlignmentStatus.MEASURING


def test_the_draft_is_measured_on_the_held_out_labels_only(
    world, fake_openai, django_capture_on_commit_callbacks
):
    fake_openai.responder(aligned_judge)
    with django_capture_on_commit_callbacks(execute=True):
        proposal = propose_aligned_version(world["v1"], actor=world["owner"])
    proposal.refresh_from_db()
    assert proposal.status == AlignmentStatus.MEASURED, proposal.error
    # One judge call per held-out case, each with the draft's examples in its prompt.
    prompts = [
        r["body"]["messages"][-1]["content"]
        for r in fake_openai.requests
        if r["path"].endswith("/chat/completions")
    ]
    assert len(prompts) == len(proposal.held_out) == 6
    assert all("Examples of graded answers" in p for p in prompts)
    held_answers = {g.case_result.output for g in world["grades"] if g.pk in proposal.held_out}
    assert {
        re.search(r"<untrusted-output-\w+>\n(.*)\n</untrusted", p, re.S).group(1) for p in prompts
    } == held_answers
    m = proposal.measurement
    # Held out: 3 agreements and 3 disagreements of v1, so v1 agrees with people on 3 of 6;
    # the draft, following its examples, on all 6.
    assert m["n"] == 6 and m["undecided"] == 0
    assert m["source"]["agreement"] == pytest.approx(0.5)
    assert m["proposed"]["agreement"] == 1.0
    # Kappa is 1 for perfect agreement, and undefined when the six held-out cases happen to be
    # ones people all passed (which cases are held out follows a hash of their ids).
    people = set(proposal.human.values())
    assert m["proposed"]["kappa"] == (pytest.approx(1.0) if people == {True, False} else None)
    assert proposal.measured_content == alignment.content_digest(proposal.proposed)


def test_nobody_signs_off_a_proposed_version_before_it_is_measured(
    world, fake_openai, django_capture_on_commit_callbacks
):
    owner = world["owner"]
    proposal = propose_aligned_version(world["v1"], actor=make_user(roles=("Rubric owner",), is_staff=True))
    draft = services.submit_rubric_version(proposal.proposed, actor=proposal.proposed.author)
    assert "not measured yet" in alignment_refusal(draft)
    assert "not measured yet" in transition_refusal(draft, owner, RubricState.APPROVED)
    with pytest.raises(ValidationError, match="not measured yet"):
        services.approve_rubric_version(draft, actor=owner)
    assert RubricVersion.objects.get(pk=draft.pk).state == RubricState.SUBMITTED

    fake_openai.responder(aligned_judge)
    measure_proposal(proposal.pk)
    assert alignment_refusal(draft) == "" and transition_refusal(draft, owner, RubricState.APPROVED) == ""
    assert services.approve_rubric_version(draft, actor=owner).state == RubricState.APPROVED


def test_an_edit_after_the_measurement_needs_another_measurement(world, fake_openai):
    fake_openai.responder(aligned_judge)
    author = make_user(roles=("Rubric owner",))
    proposal = propose_aligned_version(world["v1"], actor=author)
    measure_proposal(proposal.pk)
    draft = services.edit_rubric_version(proposal.proposed, actor=author, few_shot=[])
    assert "changed after" in alignment_refusal(draft)
    draft = services.submit_rubric_version(draft, actor=author)
    with pytest.raises(ValidationError, match="changed after"):
        services.approve_rubric_version(draft, actor=world["owner"])
    with pytest.raises(PermissionDenied):
        remeasure_alignment(proposal, actor=make_user())  # neither its author nor an owner
    remeasure_alignment(proposal, actor=author)
    measure_proposal(proposal.pk)
    proposal.refresh_from_db()
    # Without its examples the draft judges as v1 did: no better than v1 on the held-out labels.
    assert proposal.measurement["proposed"]["agreement"] == pytest.approx(0.5)
    assert services.approve_rubric_version(draft, actor=world["owner"]).state == RubricState.APPROVED


def test_the_admin_offers_no_sign_off_of_an_unmeasured_proposal_and_refuses_a_forced_one(world, client):
    owner = world["owner"]
    client.force_login(owner)
    # v1's judge disagrees with people on labelled cases: its page offers an aligned draft.
    v1_page = client.get(f"/admin/grading_app/rubricversion/{world['v1'].pk}/change/")
    assert b"/decide/propose_aligned/" in v1_page.content
    proposal = propose_aligned_version(world["v1"], actor=make_user(roles=("Rubric owner",)))
    draft = services.submit_rubric_version(proposal.proposed, actor=proposal.proposed.author)
    page = client.get(f"/admin/grading_app/rubricversion/{draft.pk}/change/")
    assert page.status_code == 200
    assert b"/decide/approve/" not in page.content
    assert b"not measured yet" in page.content
    forced = client.post(
        f"/admin/grading_app/rubricversion/{draft.pk}/decide/approve/", {"confirmed": "yes", "reason": "fine"}
    )
    assert forced.status_code in (302, 200)
    action = client.post(
        "/admin/grading_app/rubricversion/",
        {"action": "approve", "_selected_action": [draft.pk], "confirmed": "yes", "reason": "fine"},
    )
    assert action.status_code in (302, 200)
    assert RubricVersion.objects.get(pk=draft.pk).state == RubricState.SUBMITTED


def test_only_owners_and_rubric_writers_propose(world):
    stranger = make_user()
    with pytest.raises(PermissionDenied):
        propose_aligned_version(world["v1"], actor=stranger)
    assert not AlignmentProposal.objects.exists()


def test_a_proposal_needs_disagreements_to_learn_from_and_labels_to_measure_on(world, reviewer):
    v1 = world["v1"]
    # Two more reviewers agree with the judge everywhere: people now side with the judge on
    # every case (2 to 1), so there is nothing to learn from.
    for person in (make_user(roles=("Reviewer",)), make_user(roles=("Reviewer",))):
        for grade in world["grades"]:
            services.label_grade(grade, actor=person, passed=grade.passed)
    with pytest.raises(ValidationError, match="Nothing to learn from"):
        propose_aligned_version(v1, actor=world["owner"])
    # A version with only three labelled cases cannot be measured on enough held-out labels.
    v2 = make_rubric_version(world["endpoint"], owner=world["owner"])
    for grade in world["grades"][5:8]:  # judge passes, people fail: three disagreements
        relabelled = Grade.objects.create(
            case_result=CaseResult.objects.create(
                run=grade.case_result.run,
                case=make_case(grade.case_result.case.dataset, f"again-{grade.pk}"),
                case_revision=1,
                output=grade.case_result.output,
            ),
            grader=world["judge"],
            rubric_version=v2,
            passed=True,
            score=1.0,
        )
        services.label_grade(relabelled, actor=reviewer, passed=False)
    with pytest.raises(ValidationError, match="Too few labelled cases"):
        propose_aligned_version(v2, actor=world["owner"])
    assert not AlignmentProposal.objects.exists()


def test_a_template_without_examples_cannot_be_aligned(world):
    v1 = world["v1"]
    template = v1.prompt_template.replace("{examples}", "")
    bare = services.create_rubric_version(
        v1.rubric,
        actor=make_user(),
        criteria=v1.criteria,
        endpoint=v1.endpoint,
        model="m",
        prompt_template=template,
    )
    with pytest.raises(ValidationError, match="no \\{examples\\} placeholder"):
        propose_aligned_version(bare, actor=world["owner"])


def test_a_measurement_where_the_judge_decided_nothing_does_not_count(world, fake_openai):
    from tests.fake_openai import fault

    fake_openai.default(fault("500"))  # the judge endpoint fails every call
    author = make_user(roles=("Rubric owner",))
    proposal = propose_aligned_version(world["v1"], actor=author)
    measure_proposal(proposal.pk)
    proposal.refresh_from_db()
    assert proposal.status == AlignmentStatus.FAILED
    assert proposal.measurement["n"] == 0 and "decided none of the held-out cases" in proposal.error
    draft = services.submit_rubric_version(proposal.proposed, actor=author)
    with pytest.raises(ValidationError, match="not measured yet"):
        services.approve_rubric_version(draft, actor=world["owner"])


def test_proposing_from_the_admin_lands_on_the_draft_which_shows_agreement_and_kappa(
    world, client, fake_openai, django_capture_on_commit_callbacks
):
    # Admin walk L3: the proposal left its author on v1 without a link to the draft, and the
    # measured agreement had no kappa.
    fake_openai.responder(aligned_judge)
    client.force_login(world["owner"])
    url = f"/admin/grading_app/rubricversion/{world['v1'].pk}/decide/propose_aligned/"

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"confirmed": "yes", "reason": ""})
    draft = RubricVersion.objects.get(rubric=world["v1"].rubric, number=world["v1"].number + 1)
    page = client.get(response.url).content.decode()

    assert response.url == f"/admin/grading_app/rubricversion/{draft.pk}/change/"
    assert f"this is {draft}" in page  # the message names the draft it now shows
    # v1 agrees with people on 3 of the 6 held-out labels, the draft on all 6; v1's kappa
    # depends on which agreements were held out (the split follows the version).
    kappa = draft.alignment.measurement["source"]["kappa"]
    v1 = "-" if kappa is None else f"{kappa:.2f}"
    assert f"people agree with v1 50% (kappa {v1}), with the draft 100% (kappa 1.00)" in page
    assert "to be measured on 6 held-out labels" in page  # the trail says what was to come


def test_proposing_when_the_judge_is_down_lands_on_the_draft_saying_so(
    world, client, fake_openai, django_capture_on_commit_callbacks
):
    fake_openai.responder(lambda body: fault("bad_json"))  # the judge answers prose, never a verdict
    client.force_login(world["owner"])
    url = f"/admin/grading_app/rubricversion/{world['v1'].pk}/decide/propose_aligned/"

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"confirmed": "yes", "reason": ""})
    page = client.get(response.url).content.decode()

    assert "Status: <b>measurement failed</b>" in page
    assert "The draft&#x27;s judge decided none of the held-out cases" in page
