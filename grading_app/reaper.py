"""The reaper: the database decides what is unfinished, Redis only says whether a job is alive.

RQ notices a dead worker only after its heartbeat lapses and another worker's periodic
cleanup runs (minutes), and jobs deferred behind a failed dependency wait forever. So for
every run not yet finished, the reaper looks at its chunks and re-enqueues each one that
is not done and whose job is lost (Redis forgot it), failed, or started on a worker that
stopped beating, within a bounded number of attempts; and it enqueues the finaliser of a
run whose chunks are all settled. Running it twice, or beside live workers, is safe:
chunk writes are idempotent and the finaliser runs once.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from evalproject.queues import enqueue, uses_redis
from grading_app import jobs
from grading_app.choices import ChunkStatus, RunStatus
from grading_app.models import Run, RunChunk
from grading_app.services.runs import chunk_job_id, finalise_job_id

logger = logging.getLogger(__name__)


@dataclass
class ReapReport:
    requeued: list[str] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)
    finalised: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"re-enqueued {len(self.requeued)} chunk(s), gave up on {len(self.gave_up)}, "
            f"finalising {len(self.finalised)} run(s)"
        )


def max_attempts() -> int:
    return settings.EVALGATE_CHUNK_MAX_ATTEMPTS


def _job_problem(chunk: RunChunk, connection: object, stale_after: timedelta) -> str:
    """Why the chunk's job will not complete on its own, or "" when it is alive and well."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus
    from rq.worker import Worker

    try:
        job = Job.fetch(chunk.job_id, connection=connection)
    except NoSuchJobError:
        return "its job is gone from Redis"
    status = job.get_status(refresh=False)
    if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
        return f"its job {status}"
    if status == JobStatus.FINISHED and chunk.status != ChunkStatus.DONE:
        return "its job finished without completing the chunk"
    if status == JobStatus.STARTED:
        worker = Worker.find_by_key(
            Worker.redis_worker_namespace_prefix + (job.worker_name or ""), connection=connection
        )
        beat = worker.last_heartbeat if worker else None
        if beat is None or timezone.now() - beat > stale_after:
            return f"its worker {job.worker_name or '?'} stopped beating"
    return ""


def _requeue(chunk: RunChunk, reason: str, report: ReapReport) -> None:
    label = f"run {chunk.run_id} chunk {chunk.index}"
    if chunk.attempts >= max_attempts():
        chunk.status = ChunkStatus.FAILED
        chunk.error = f"gave up after {chunk.attempts} attempt(s): {reason}"
        chunk.finished_at = timezone.now()
        chunk.save(update_fields=["status", "error", "finished_at"])
        report.gave_up.append(label)
        return
    # A fresh job id: the dead attempt's job may still sit in an RQ registry under the old one.
    chunk.job_id = f"{chunk_job_id(chunk.run_id, chunk.index)}-r{timezone.now():%H%M%S%f}"
    chunk.status = ChunkStatus.QUEUED
    chunk.error = f"re-enqueued: {reason}"
    chunk.save(update_fields=["job_id", "status", "error"])
    enqueue(jobs.grade_chunk, chunk.pk, job_id=chunk.job_id, description=f"{label} (retry)")
    report.requeued.append(label)


def reap(*, stale_after: timedelta | None = None) -> ReapReport:
    """One pass over unfinished runs (see the module docstring); returns what it did."""
    stale_after = stale_after or timedelta(seconds=settings.EVALGATE_WORKER_STALE_S)
    report = ReapReport()
    connection = None
    if uses_redis():
        from evalproject.queues import get_redis_connection

        connection = get_redis_connection()
    for run in Run.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).order_by("pk"):
        with transaction.atomic():
            # skip_locked: a chunk a worker is writing right now is alive by definition, and
            # waiting for it while holding other chunks' locks could deadlock with that worker.
            chunks = list(
                RunChunk.objects.select_for_update(skip_locked=True)
                .filter(run=run)
                .exclude(status=ChunkStatus.DONE)
                .order_by("pk")
            )
            for chunk in chunks:
                if chunk.status == ChunkStatus.FAILED:
                    if chunk.attempts < max_attempts():
                        _requeue(chunk, chunk.error or "its job failed", report)
                elif connection is not None:
                    reason = _job_problem(chunk, connection, stale_after)
                    if reason:
                        _requeue(chunk, reason, report)
            unsettled = [
                c
                for c in RunChunk.objects.filter(run=run).values_list("status", "attempts")
                if not jobs.is_settled(*c)
            ]
            if not unsettled and not _finaliser_alive(run, connection):
                enqueue(
                    jobs.finalise_run,
                    run.pk,
                    job_id=f"{finalise_job_id(run.pk)}-reaped-{timezone.now():%H%M%S%f}",
                )
                report.finalised.append(run.pk)
    if report.requeued or report.gave_up or report.finalised:
        logger.warning("reaper: %s", report)
    return report


def _finaliser_alive(run: Run, connection: object) -> bool:
    """Whether the run's original finaliser is queued or running. A deferred one is not alive:
    RQ never releases a job deferred behind a dependency it lost."""
    if connection is None:
        return False
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus

    try:
        job = Job.fetch(finalise_job_id(run.pk), connection=connection)
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.STARTED)
