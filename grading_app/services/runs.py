"""Writes that matter for grading: starting a run (snapshot graders, chunk, enqueue)."""

import math
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, QuerySet

from datasets_app.models import Case, Dataset
from evalproject.bulk import copy_insert
from evalproject.queues import cancel_jobs, enqueue, enqueue_each, process_identity, uses_redis
from grading_app import graders
from grading_app.choices import RubricState, RunStatus, TargetKind
from grading_app.models import Grader, RubricVersion, Run, RunChunk, SubmittedOutput, Target
from grading_app.models.runs import MAX_TRIALS
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


KEY_BATCH = 10_000


def chunk_job_id(run_id: int, index: int, attempt: int = 1) -> str:
    """Job ids name their run and chunk; a retry gets its own id (the dead attempt's job may
    still sit in an RQ registry, and must not be confused with the new one)."""
    base = f"run-{run_id}-chunk-{index}"
    return base if attempt <= 1 else f"{base}-a{attempt}"


def finalise_job_id(run_id: int) -> str:
    return f"run-{run_id}-finalise"


def current_finaliser_job_id(run: Run) -> str:
    """The job id of the run's latest finaliser (the first one unless another was enqueued)."""
    return run.finaliser_job_id or finalise_job_id(run.pk)


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
    trials: int = 1,
) -> Run:
    """Create a run over the dataset's active cases and enqueue its chunks and finaliser.

    Either ``outputs`` (the candidate's submitted outputs, already validated, each naming
    a case of the dataset) or a ``target`` that produces them. Active cases without an
    output are recorded as missing, which a gate treats as undecided, never as a pass.
    A target runs each case ``trials`` times; submitted outputs say their trial themselves
    (the run has as many trials as the highest one, a trial not submitted is missing).
    Jobs are enqueued after commit.
    """
    if (outputs is None) == (target is None or target.kind == TargetKind.SUBMITTED):
        raise ValidationError({"outputs": "Submit outputs, or run a target that produces them (not both)."})
    if outputs is not None and trials != 1:
        raise ValidationError({"trials": "Submitted outputs say their own trial (the `trial` of each item)."})
    run = open_run(dataset=dataset, candidate=candidate, target=target, tier=tier, actor=actor, trials=trials)
    add_outputs(run, outputs or [])
    return dispatch_run(run, chunk_size=chunk_size)


def refuse_empty_run(dataset: Dataset, tier: str = "") -> None:
    """ValidationError when no active case of ``dataset`` is in scope, with what is there instead."""
    cases = Case.objects.filter(dataset=dataset).in_tier(tier or None)
    if cases.active().exists():
        return
    counts = dict(cases.values_list("status").annotate(n=Count("pk")).order_by())
    waiting = (
        ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(counts.items())) or "no cases"
    )
    scope = f"{dataset.slug} (tier {tier})" if tier else dataset.slug
    raise ValidationError(
        {
            "dataset": f"No active case in {scope} to run ({waiting}): a run grades active cases only; "
            "submit the cases for review and have them audited first."
        }
    )


def open_run(
    *,
    dataset: Dataset,
    candidate: str,
    target: Target | None = None,
    tier: str = "",
    actor: AbstractBaseUser | None = None,
    trials: int = 1,
) -> Run:
    """A run waiting for its outputs (submitted in pages); dispatch_run starts it.

    A dataset with no active case in scope refuses to run, saying why: a run of nothing would
    "succeed" with no case graded (imported cases arrive as drafts, for instance)."""
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise ValidationError({"trials": f"Trials per case: a whole number from 1 to {MAX_TRIALS}."})
    refuse_empty_run(dataset, tier)
    return Run.objects.create(
        dataset=dataset,
        tier=tier,
        trials=trials,
        candidate=candidate,
        target_kind=target.kind if target else TargetKind.SUBMITTED,
        target=target,
        status=RunStatus.WAITING,
        created_by=actor,
    )


@transaction.atomic
def add_outputs(run: Run, outputs: list[OutputItem]) -> None:
    """Store submitted outputs of a waiting run; each names a case of its dataset, at most once
    per trial in the whole run (an earlier page included). Raises ValidationError naming the
    keys. The run has as many trials as the highest trial submitted."""
    keys = sorted({item.case for item in outputs})
    known: set[str] = set()
    stored: set[tuple[str, int]] = set()
    for start in range(0, len(keys), KEY_BATCH):  # SQLite caps the parameters of one query
        batch = keys[start : start + KEY_BATCH]
        known |= set(
            Case.objects.filter(dataset_id=run.dataset_id, key__any_of=batch).values_list("key", flat=True)
        )
        stored |= set(
            SubmittedOutput.objects.filter(run=run, case_key__any_of=batch).values_list("case_key", "trial")
        )
    unknown = [item.case for item in outputs if item.case not in known]
    if unknown:
        raise ValidationError(
            {"outputs": f"Unknown case key(s) in dataset {run.dataset.slug}: {', '.join(unknown[:20])}"}
        )
    again = sorted(
        f"{i.case} (trial {i.trial})" if i.trial > 1 else i.case
        for i in outputs
        if (i.case, i.trial) in stored
    )
    if again:
        raise ValidationError(
            {"outputs": f"Output(s) already submitted for case(s): {', '.join(again[:20])}"}
        )
    rows = [
        {
            "run_id": run.pk,
            "case_key": i.case,
            "trial": i.trial,
            "output": i.output,
            "trace": i.trace,
            "metrics": i.metrics,
        }
        for i in outputs
    ]
    highest = max((i.trial for i in outputs), default=1)
    if highest > run.trials:
        Run.objects.filter(pk=run.pk, trials__lt=highest).update(trials=highest)
        run.trials = highest
    if connection.vendor == "postgresql":  # COPY: the ORM's insert was most of accepting outputs
        copy_insert(SubmittedOutput, rows)
    else:
        SubmittedOutput.objects.bulk_create(SubmittedOutput(**row) for row in rows)


def llm_concurrencies(run: Run) -> set[int]:
    """The calls in flight per worker of each endpoint the run's chunks call: the live target's
    and each judge grader's in the snapshot (empty for a run of code graders on uploads)."""
    from grading_app.execution import target_concurrency  # it imports openai: keep that lazy

    limits: set[int] = set()
    if run.target_id and (concurrency := target_concurrency(run.target)):
        limits.add(concurrency)
    judge_versions: set[int] = set()
    for pinned in run.grader_snapshot:
        try:
            needs_rubric = graders.get_kind(pinned["kind"]).needs_rubric
        except ValidationError:
            continue  # an unknown kind errors in the chunk, which says so per grade
        if needs_rubric and pinned.get("rubric_version"):
            judge_versions.add(pinned["rubric_version"])
    if judge_versions:
        versions = RubricVersion.objects.filter(pk__in=judge_versions)
        limits |= set(versions.values_list("endpoint__max_concurrency", flat=True))
    return limits


def chunk_size_for(run: Run, configured: int | None = None, limits: set[int] | None = None) -> int:
    """How many cases go in each of the run's chunks (the last one takes what remains).

    A chunk sends its calls to an endpoint ``max_concurrency`` at a time, and a wave of calls
    takes one call's latency whether it is full or not. So a run with LLM work (a live target,
    a judge grader) gets ``configured`` rounded *up* to a multiple of the concurrency: at 16 in
    flight, 100 cases take ceil(100 / 16) = 7 waves and 112 take the same 7, so a chunk lasts
    as long as the configured size made it last (the bound it sets on a job's time and on what
    a retry redoes) and only the run's last chunk can end on a part-empty wave (cached answers
    and cases a grader skips make no call; they thin waves anyway). Rounding down to 96 would
    fill the waves too, but make more chunks, each paying a job's fixed start (a fork, a
    database connection, a client). Several endpoints: a multiple of all their concurrencies
    (their least common multiple) when that is within ``configured``, else of the largest.

    A run of code graders on uploaded outputs makes no calls: a case costs well under a
    millisecond, so its chunks are ``EVALGATE_CODE_CHUNK_SIZE`` (1,000) cases, where each job's
    fixed start would otherwise be most of its time (100 chunks of 100 cases through one
    rqworker: 14.0 s for 10,000 cases; 10 chunks of 1,000: 5.7 s). ``configured`` (a caller's
    explicit size) wins over either default.
    """
    limits = llm_concurrencies(run) if limits is None else limits  # the caller's, if it has them
    if not limits:
        return configured or settings.EVALGATE_CODE_CHUNK_SIZE
    configured = configured or settings.EVALGATE_CHUNK_SIZE
    unit = math.lcm(*limits)
    if unit > configured:
        unit = max(limits)
    return math.ceil(configured / unit) * unit


def pin_personas(run: Run, cases: QuerySet[Case]) -> dict[str, int | None]:
    """The persona versions that will play the run's simulated users: each persona rubric's
    latest approved version now (None: none approved; those cases' results say so)."""
    if run.target_id is None or run.target.kind == TargetKind.SUBMITTED:
        return {}  # submitted outputs: nobody plays anything
    from grading_app.personas import persona_slugs  # personas import the model client lazily

    slugs = persona_slugs(cases.filter(input__has_key="simulated_user").only("input"))
    latest = RubricVersion.objects.latest_approved_by_slug(slugs) if slugs else {}
    return {slug: latest[slug].pk if slug in latest else None for slug in sorted(slugs)}


@transaction.atomic
def dispatch_run(run: Run, *, chunk_size: int | None = None) -> Run:
    """Start a waiting run: pin the graders, chunk the active cases, enqueue after commit."""
    from grading_app import jobs  # jobs import services' helpers; keep the cycle lazy

    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.status != RunStatus.WAITING:
        raise ValidationError(f"Run {run.pk} is already {run.get_status_display().lower()}.")
    cases = Case.objects.filter(dataset_id=run.dataset_id).active().in_tier(run.tier or None)
    case_ids = list(cases.order_by("pk").values_list("pk", flat=True))
    run.status = RunStatus.QUEUED
    run.grader_snapshot = snapshot_graders()
    run.persona_versions = pin_personas(run, cases)
    run.total_cases = len(case_ids) * run.trials  # progress counts results: one per case and trial
    run.inline_owner = "" if uses_redis() else process_identity()
    run.save(update_fields=["status", "grader_snapshot", "persona_versions", "total_cases", "inline_owner"])
    # A chunk holds every trial of its cases: the configured size (rounded to whole waves of
    # calls) counts results, so a chunk of a 3-trial run holds a third of the cases.
    limits = llm_concurrencies(run)
    size = max(1, chunk_size_for(run, chunk_size, limits) // run.trials)
    chunks = RunChunk.objects.bulk_create(
        RunChunk(run=run, index=n, case_ids=case_ids[start : start + size], job_id=chunk_job_id(run.pk, n))
        for n, start in enumerate(range(0, len(case_ids), size))
    )
    # One enqueue per chunk, not enqueue_many: django-rq defers enqueue_call to commit,
    # while enqueue_many would push jobs for rows a rollback could still erase.
    # bulk_create set the chunks' pks (PostgreSQL, SQLite >= 3.35).
    if limits:
        # Chunks that call models run one at a time in an embedded process: its calls in flight
        # stay within the endpoint's max_concurrency, as in one worker.
        for chunk in chunks:
            enqueue(jobs.grade_chunk, chunk.pk, job_id=chunk.job_id)
    else:
        enqueue_each(jobs.grade_chunk, [((chunk.pk,), chunk.job_id) for chunk in chunks])
    if not chunks:  # otherwise the chunk that settles last enqueues the finaliser
        enqueue(jobs.finalise_run, run.pk, job_id=finalise_job_id(run.pk))
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
