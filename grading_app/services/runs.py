"""Writes that matter for grading: starting a run (snapshot graders, chunk, enqueue)."""

from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from datasets_app.models import Case, Dataset
from evalproject.queues import cancel_jobs, enqueue
from grading_app.choices import RubricState, RunStatus, TargetKind
from grading_app.models import Grader, RubricVersion, Run, RunChunk, SubmittedOutput, Target
from grading_app.outputs import OutputItem


def rubric_version_for(grader: Grader) -> RubricVersion | None:
    """The version a judge grader uses now: its pinned one, else the rubric's latest approved,
    else its latest version of any state (graded, but no gate rule on it can pass)."""
    if grader.rubric_version_id:
        return grader.rubric_version
    if grader.rubric_id is None:
        return None
    versions = RubricVersion.objects.filter(rubric_id=grader.rubric_id).exclude(state=RubricState.RETIRED)
    return versions.approved().order_by("-number").first() or versions.order_by("-number").first()


def snapshot_graders() -> list[dict[str, Any]]:
    """Pin the active graders as they are now: config, history row and rubric version."""
    graders = (
        Grader.objects.filter(active=True)
        .select_related("rubric_version")
        .prefetch_related("failure_classes")
    )
    snapshot = []
    for grader in graders:
        latest = grader.history.only("history_id").first()
        version = rubric_version_for(grader)
        snapshot.append(
            {
                "id": grader.pk,
                "slug": grader.slug,
                "kind": grader.kind,
                "config": grader.config,
                "failure_classes": sorted(fc.slug for fc in grader.failure_classes.all()),
                "history_id": latest.history_id if latest else None,
                "rubric_version": version.pk if version else None,
            }
        )
    return snapshot


def chunk_job_id(run_id: int, index: int, attempt: int = 1) -> str:
    """Job ids name their run and chunk; a retry gets its own id (the dead attempt's job may
    still sit in an RQ registry, and must not be confused with the new one)."""
    base = f"run-{run_id}-chunk-{index}"
    return base if attempt <= 1 else f"{base}-a{attempt}"


def finalise_job_id(run_id: int) -> str:
    return f"run-{run_id}-finalise"


@transaction.atomic
def start_run(
    *,
    dataset: Dataset,
    candidate: str,
    outputs: list[OutputItem] | None = None,
    target: Target | None = None,
    tier: str = "",
    actor: AbstractBaseUser | None = None,
    chunk_size: int | None = None,
) -> Run:
    """Create a run over the dataset's active cases and enqueue its chunks and finaliser.

    Either ``outputs`` (the candidate's submitted outputs, already validated, each naming
    a case of the dataset) or a ``target`` that produces them. Active cases without an
    output are recorded as missing, which a gate treats as undecided, never as a pass.
    Jobs are enqueued after commit.
    """
    if (outputs is None) == (target is None or target.kind == TargetKind.SUBMITTED):
        raise ValidationError({"outputs": "Submit outputs, or run a target that produces them (not both)."})
    outputs = outputs or []
    from grading_app import jobs  # jobs import services' helpers; keep the cycle lazy

    cases = Case.objects.filter(dataset=dataset).active().in_tier(tier or None)
    case_ids = list(cases.order_by("pk").values_list("pk", flat=True))
    known_keys = set(Case.objects.filter(dataset=dataset).values_list("key", flat=True))
    unknown = [item.case for item in outputs if item.case not in known_keys]
    if unknown:
        raise ValidationError(
            {"outputs": f"Unknown case key(s) in dataset {dataset.slug}: {', '.join(unknown[:20])}"}
        )
    run = Run.objects.create(
        dataset=dataset,
        tier=tier,
        candidate=candidate,
        target_kind=target.kind if target else TargetKind.SUBMITTED,
        target=target,
        grader_snapshot=snapshot_graders(),
        total_cases=len(case_ids),
        created_by=actor,
    )
    SubmittedOutput.objects.bulk_create(
        SubmittedOutput(run=run, case_key=i.case, output=i.output, trace=i.trace, metrics=i.metrics)
        for i in outputs
    )
    size = chunk_size or settings.EVALGATE_CHUNK_SIZE
    chunks = RunChunk.objects.bulk_create(
        RunChunk(run=run, index=n, case_ids=case_ids[start : start + size], job_id=chunk_job_id(run.pk, n))
        for n, start in enumerate(range(0, len(case_ids), size))
    )
    # One enqueue per chunk, not enqueue_many: django-rq defers enqueue_call to commit,
    # while enqueue_many would push jobs for rows a rollback could still erase.
    for chunk in chunks:  # bulk_create set their pks (PostgreSQL, SQLite >= 3.35)
        enqueue(jobs.grade_chunk, chunk.pk, job_id=chunk.job_id)
    enqueue(
        jobs.finalise_run,
        run.pk,
        job_id=finalise_job_id(run.pk),
        depends_on=[chunk.job_id for chunk in chunks],
    )
    return run


@transaction.atomic
def cancel_run(run: Run, *, actor: AbstractBaseUser | None, reason: str = "") -> Run:
    """Stop a run: chunks not yet started never start, and the run is final as cancelled.

    A cancelled run proves nothing about the candidate, so its check is inconclusive (the
    run_finished signal tells gates_app), whatever its finished chunks said.
    """
    from grading_app.jobs import finish_run  # jobs imports this module's helpers

    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.is_finished:
        raise ValidationError(f"Run {run.pk} is already {run.get_status_display().lower()}.")
    who = getattr(actor, "username", None) or "the system"
    run.error = f"cancelled by {who}" + (f": {reason}" if reason else "")
    cancel_jobs(list(run.chunks.exclude(status="done").values_list("job_id", flat=True)))
    finish_run(run, RunStatus.CANCELLED)
    return run
