"""Writes that matter for grading: starting a run (snapshot graders, chunk, enqueue)."""

from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from datasets_app.models import Case, Dataset, FailureClass
from evalproject.queues import enqueue
from grading_app.choices import TargetKind
from grading_app.models import Grader, Run, RunChunk, SubmittedOutput
from grading_app.outputs import OutputItem


def snapshot_graders() -> list[dict[str, Any]]:
    """Pin the active graders as they are now, with their history row ids."""
    graders = Grader.objects.filter(active=True).prefetch_related("failure_classes")
    snapshot = []
    for grader in graders:
        latest = grader.history.only("history_id").first()
        snapshot.append(
            {
                "id": grader.pk,
                "slug": grader.slug,
                "kind": grader.kind,
                "config": grader.config,
                "failure_classes": sorted(fc.slug for fc in grader.failure_classes.all()),
                "history_id": latest.history_id if latest else None,
            }
        )
    return snapshot


def chunk_job_id(run_id: int, index: int) -> str:
    return f"run-{run_id}-chunk-{index}"


def finalise_job_id(run_id: int) -> str:
    return f"run-{run_id}-finalise"


@transaction.atomic
def start_run(
    *,
    dataset: Dataset,
    candidate: str,
    outputs: list[OutputItem],
    tier: str = "",
    actor: AbstractBaseUser | None = None,
    chunk_size: int | None = None,
) -> Run:
    """Create a run over the dataset's active cases and enqueue its chunks and finaliser.

    ``outputs`` are the candidate's submitted outputs, already validated; each must name a
    case of the dataset. Active cases without an output are recorded as missing, which
    a gate treats as undecided, never as a pass. Jobs are enqueued after commit.
    """
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
        target_kind=TargetKind.SUBMITTED,
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
def save_grader(
    *,
    slug: str,
    kind: str,
    config: dict[str, Any] | None = None,
    dimension: str = "",
    failure_classes: list[FailureClass] | None = None,
    name: str = "",
    actor: AbstractBaseUser | None = None,
) -> Grader:
    """Create or update a grader by slug; the kind validates its config (ValidationError)."""
    grader = Grader.objects.filter(slug=slug).first() or Grader(slug=slug)
    grader.kind, grader.config, grader.dimension, grader.name = kind, config or {}, dimension, name
    grader.full_clean()
    grader._history_user = actor
    grader.save()
    grader.failure_classes.set(failure_classes or [])
    return grader
