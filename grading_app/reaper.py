"""The reaper: the database decides what is unfinished, Redis only says whether a job is alive.

RQ notices a dead worker only after its heartbeat lapses and another worker's periodic
cleanup runs (minutes), and jobs deferred behind a failed dependency wait forever. So for
every run not yet finished, the reaper looks at its chunks and re-enqueues each one that
is not done and whose job is lost (Redis forgot it), failed, or started on a worker that
stopped beating, within a bounded number of attempts; and it enqueues a finaliser for a run
whose chunks are all settled when the run's latest finaliser is not alive by the same test
(a worker killed inside a finaliser leaves it "started" in RQ for good).

In embedded mode (no Redis) jobs live in the memory of the process that enqueued them: when
that process is gone (``Run.inline_owner``), the reaper runs the run's unfinished chunks and
its finaliser again, here. Running the reaper twice, or beside live workers, is safe: chunk
writes are idempotent and the finaliser runs once.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from evalproject.queues import enqueue, process_alive, process_identity, uses_redis
from grading_app import jobs
from grading_app.choices import ChunkStatus, RunStatus
from grading_app.models import Run, RunChunk
from grading_app.services.runs import cancel_run, chunk_job_id, current_finaliser_job_id, finalise_job_id

logger = logging.getLogger(__name__)


@dataclass
class ReapReport:
    requeued: list[str] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)
    finalised: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"re-enqueued {len(self.requeued)} chunk(s), gave up on {len(self.gave_up)}, "
            f"finalising {len(self.finalised)} run(s), expired {len(self.expired)} waiting for outputs"
        )


def max_attempts() -> int:
    return settings.EVALGATE_CHUNK_MAX_ATTEMPTS


def _job_problem(job_id: str, connection: Any, stale_after: timedelta, *, done: bool) -> str:
    """Why the job will not complete on its own, or "" when it is alive and well. ``done``:
    whether its row says it completed (a finished job whose row did not is lost work)."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus
    from rq.worker import Worker

    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return "its job is gone from Redis"
    status = job.get_status(refresh=False)
    if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
        return f"its job {status}"
    if status == JobStatus.DEFERRED:
        # Asked only once everything it waits for has settled: RQ never releases a job deferred
        # behind a dependency it lost.
        return "its job waits on a dependency that will never finish"
    if status == JobStatus.FINISHED and not done:
        return "its job finished without completing its work"
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


def _finaliser(run: Run, report: ReapReport) -> None:
    jobs.enqueue_finaliser(run.pk, f"{finalise_job_id(run.pk)}-reaped-{timezone.now():%H%M%S%f}")
    report.finalised.append(run.pk)


def _reap_queued_run(run: Run, connection: Any, stale_after: timedelta, report: ReapReport) -> None:
    # skip_locked: a chunk a worker is writing right now is alive by definition, and waiting
    # for it while holding other chunks' locks could deadlock with that worker.
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
        elif reason := _job_problem(chunk.job_id, connection, stale_after, done=False):
            _requeue(chunk, reason, report)
    unsettled = [
        c
        for c in RunChunk.objects.filter(run=run).values_list("status", "attempts")
        if not jobs.is_settled(*c)
    ]
    if not unsettled and _job_problem(current_finaliser_job_id(run), connection, stale_after, done=False):
        _finaliser(run, report)


def _reap_inline_run(run: Run, report: ReapReport) -> None:
    """Embedded mode: the run's jobs died with the process that held them; run them here."""
    logger.warning("run %s: its process %s is gone; running its jobs here", run.pk, run.inline_owner or "?")
    Run.objects.filter(pk=run.pk).update(inline_owner=process_identity())
    for chunk in RunChunk.objects.select_for_update().filter(run=run).exclude(status=ChunkStatus.DONE):
        if chunk.status != ChunkStatus.FAILED or chunk.attempts < max_attempts():
            _requeue(chunk, f"the process {run.inline_owner or '?'} that held its job is gone", report)
    # After the chunks (on-commit order): it finds them settled, or leaves the run to them.
    _finaliser(run, report)


def reap(*, stale_after: timedelta | None = None) -> ReapReport:
    """One pass over unfinished runs (see the module docstring); returns what it did."""
    stale_after = stale_after or timedelta(seconds=settings.EVALGATE_WORKER_STALE_S)
    report = ReapReport()
    connection = None
    if uses_redis():
        from evalproject.queues import get_redis_connection

        connection = get_redis_connection()
    for run_id in (
        Run.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
        .order_by("pk")
        .values_list("pk", flat=True)
    ):
        with transaction.atomic():
            run = Run.objects.select_for_update(skip_locked=True).filter(pk=run_id).first()
            if run is None or run.is_finished:
                continue  # a finaliser holds it right now, or has just finished it
            if connection is not None:
                _reap_queued_run(run, connection, stale_after, report)
            else:
                _reap_embedded(run, report)
    _expire_waiting(report)
    if report.requeued or report.gave_up or report.finalised or report.expired:
        logger.warning("reaper: %s", report)
    return report


def _expire_waiting(report: ReapReport) -> None:
    """Runs whose outputs never all arrived (an upload in pages abandoned) end as cancelled:
    their checks become inconclusive instead of pending forever."""
    cutoff = timezone.now() - timedelta(seconds=settings.EVALGATE_UPLOAD_TTL_S)
    for run in Run.objects.filter(status=RunStatus.WAITING, created_at__lt=cutoff):
        cancel_run(run, actor=None, reason="its outputs never all arrived")
        report.expired.append(run.pk)


def _reap_embedded(run: Run, report: ReapReport) -> None:
    if not process_alive(run.inline_owner):  # no owner recorded: nobody holds its jobs either
        _reap_inline_run(run, report)
        return
    # The owner lives (or is unknown): only what failed with attempts left is retried here.
    for chunk in RunChunk.objects.select_for_update(skip_locked=True).filter(
        run=run, status=ChunkStatus.FAILED
    ):
        if chunk.attempts < max_attempts():
            _requeue(chunk, chunk.error or "its job failed", report)


def recover_at_start() -> None:
    """Embedded mode, once per process (its first request): finish the runs whose process died.

    In a thread of its own, so the request that woke it is not held up by a whole run."""
    import threading

    from django.db import close_old_connections

    def work() -> None:
        try:
            reap()
        except Exception:
            logger.exception("recovering lost in-process runs failed")
        finally:
            close_old_connections()

    threading.Thread(target=work, name="evalgate-recover", daemon=True).start()
