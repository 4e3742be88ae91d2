"""Judge alignment: propose a draft rubric version from the cases people and the judge disagreed
on, then measure it on held-out labels before anyone may sign it off (grading_app.alignment)."""

import logging

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from evalproject.queues import enqueue
from grading_app import alignment, judging
from grading_app.choices import AlignmentStatus
from grading_app.graders.base import GradingInput
from grading_app.models import AlignmentProposal, Grade, HumanLabel, RubricVersion
from grading_app.services.rubrics import create_rubric_version

logger = logging.getLogger(__name__)


def may_propose(version: RubricVersion, actor: AbstractBaseUser) -> bool:
    """The rubric's owners, and whoever may write rubric versions, propose aligned drafts."""
    return actor.pk in version.rubric.owner_ids() or actor.has_perm("grading_app.add_rubricversion")


def proposal_refusal(version: RubricVersion, actor: AbstractBaseUser) -> str:
    """Why ``actor`` may not propose an aligned draft of ``version`` ("" when they may)."""
    if not may_propose(version, actor):
        return "Only the rubric's owners, or people who may write rubric versions, propose one."
    if "{examples}" not in version.prompt_template:
        return "Its prompt template has no {examples} placeholder, so examples would never reach the judge."
    return ""


def has_disagreements(version: RubricVersion) -> bool:
    """Whether some reviewer's label on the version's judged grades says otherwise (one query)."""
    labels = HumanLabel.objects.filter(grade__rubric_version=version, grade__passed__isnull=False)
    return labels.exclude(passed=F("grade__passed")).exists()


def labelled_grades(version: RubricVersion) -> list[alignment.Labelled]:
    """The version's judged grades that people have a verdict on (two queries)."""
    labels = HumanLabel.objects.filter(grade__rubric_version=version, grade__passed__isnull=False)
    verdicts = alignment.human_verdicts(labels.values_list("grade_id", "passed", "score", "note"))
    grades = Grade.objects.filter(pk__in=list(verdicts)).values_list(
        "pk", "passed", "case_result__case__input", "case_result__output"
    )
    return [
        alignment.Labelled(pk, judged, *verdicts[pk], case_input=case_input, output=output)
        for pk, judged, case_input, output in grades
    ]


@transaction.atomic
def propose_aligned_version(
    version: RubricVersion,
    *,
    actor: AbstractBaseUser,
    share: float = alignment.HOLD_OUT_SHARE,
    max_examples: int = alignment.MAX_EXAMPLES,
) -> AlignmentProposal:
    """A new draft of ``version``'s rubric whose few-shot examples are cases, labelled by people,
    where its judge said otherwise; its agreement with people is then measured (a job) on
    labelled cases held out from those examples. Its owner signs it off only after that."""
    if not may_propose(version, actor):
        raise PermissionDenied(proposal_refusal(version, actor))
    if refusal := proposal_refusal(version, actor):
        raise ValidationError(refusal)
    labelled = labelled_grades(version)
    build, held = alignment.split(version.pk, labelled, share)
    shown = alignment.examples(version.pk, build, max_examples)
    if not shown:
        raise ValidationError(
            f"Nothing to learn from: of {len(labelled)} labelled cases, none that people and the judge "
            "disagree on is left outside the held-out set. Label more judged results in the review queue."
        )
    if len(held) < alignment.MIN_HELD_OUT:
        raise ValidationError(
            f"Too few labelled cases to measure a proposal: {len(held)} would be held out of "
            f"{len(labelled)} (at least {alignment.MIN_HELD_OUT}). Label more judged results."
        )
    disagreements = sum(x.disagrees for x in build)
    draft = create_rubric_version(
        version.rubric,
        actor=actor,
        criteria=version.criteria,
        endpoint=version.endpoint,
        model=version.model,
        scale=version.scale,
        pass_threshold=version.pass_threshold,
        prompt_template=version.prompt_template,
        few_shot=[*version.few_shot, *shown],
        note=(
            f"aligned from v{version.number}: {len(shown)} of {disagreements} disagreements with people as "
            f"examples; to be measured on {len(held)} held-out labels before it may be signed off"
        ),
    )
    proposal = AlignmentProposal.objects.create(
        source=version,
        proposed=draft,
        built_from=sorted(x.grade_id for x in build),
        held_out=sorted(x.grade_id for x in held),
        human={str(x.grade_id): x.human_passed for x in held},
        created_by=actor,
    )
    _enqueue_measurement(proposal)
    return proposal


def _enqueue_measurement(proposal: AlignmentProposal) -> None:
    from grading_app.jobs import measure_alignment  # jobs imports services: import when used

    attempt = f"{timezone.now():%Y%m%d%H%M%S%f}"
    enqueue(measure_alignment, proposal.pk, job_id=f"alignment-{proposal.pk}-{attempt}")


@transaction.atomic
def remeasure_alignment(proposal: AlignmentProposal, *, actor: AbstractBaseUser) -> AlignmentProposal:
    """Measure again (after the draft was edited, or a failed measurement): the same held-out set."""
    proposal = (
        AlignmentProposal.objects.select_for_update().select_related("proposed__rubric").get(pk=proposal.pk)
    )
    draft = proposal.proposed
    if actor.pk != draft.author_id and actor.pk not in draft.rubric.owner_ids():
        raise PermissionDenied("Only the draft's author or the rubric's owners measure it.")
    proposal.status, proposal.error = AlignmentStatus.MEASURING, ""
    proposal.save(update_fields=["status", "error"])
    _enqueue_measurement(proposal)
    return proposal


def measure_proposal(proposal_id: int) -> AlignmentProposal:
    """Judge the held-out cases with the proposed version and compare both versions with people.

    The judge calls happen outside any transaction; the result is written with the digest of
    the content that was judged, so a later edit of the draft makes it stale, never wrong."""
    proposal = AlignmentProposal.objects.select_related("proposed__endpoint", "proposed__rubric").get(
        pk=proposal_id
    )
    draft = proposal.proposed
    digest = alignment.content_digest(draft)
    grades = Grade.objects.filter(pk__in=proposal.held_out).select_related("case_result__case", "grader")
    tasks = []
    for grade in grades:
        result, case = grade.case_result, grade.case_result.case
        item = GradingInput(
            case_input=case.input,
            expected=case.expected,
            output=result.output,
            trace=result.trace or [],
            metrics={},
        )
        prompt = judging.render_prompt(draft, item, grade.grader.config or {})
        tasks.append(judging.JudgeTask(ref=grade.pk, version=draft, prompt=prompt))
    try:
        outcomes = judging.run_judges(tasks)
    except Exception as exc:  # the measurement failed; the proposal says why and can be measured again
        logger.warning("alignment %s: measurement failed: %s", proposal_id, exc)
        AlignmentProposal.objects.filter(pk=proposal_id).update(
            status=AlignmentStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise
    human = {int(g): passed for g, passed in proposal.human.items()}
    source = dict(grades.values_list("pk", "passed"))
    proposed = {ref: outcome.passed for ref, outcome in outcomes.items()}
    measurement = alignment.measure(human, source, proposed)
    errors = sorted({outcome.error for outcome in outcomes.values() if outcome.error})
    with transaction.atomic():
        proposal = AlignmentProposal.objects.select_for_update().get(pk=proposal_id)
        proposal.measurement = measurement
        proposal.measured_at = timezone.now()
        if measurement["n"]:
            proposal.status, proposal.measured_content, proposal.error = AlignmentStatus.MEASURED, digest, ""
        else:
            # Nothing was measured: a sign-off must not pass on an agreement nobody saw.
            proposal.status, proposal.measured_content = AlignmentStatus.FAILED, ""
            proposal.error = "The draft's judge decided none of the held-out cases" + (
                f": {errors[0]}" if errors else "."
            )
        proposal.save(update_fields=["measurement", "measured_content", "measured_at", "status", "error"])
    return proposal
