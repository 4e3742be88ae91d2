"""RQ job functions: primary keys in, state on database rows, safe to run twice.

The same functions run on ``manage.py rqworker`` (REDIS_URL set) and in-process after
commit (embedded mode); evalproject.queues.enqueue() decides which.
"""

import logging

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from rq import get_current_job

from evalproject.bulk import copy_insert
from evalproject.queues import enqueue, uses_redis
from grading_app.choices import ChunkStatus, RunStatus
from grading_app.execution import Row, grade_cases
from grading_app.models import CaseResult, Grade, Run, RunChunk
from grading_app.services.runs import chunk_job_id, finalise_job_id
from grading_app.signals import run_finished
from grading_app.summary import SummaryTap, evaluation_cost, summarise_run

logger = logging.getLogger(__name__)
SLOT_ID = ("case_id", "trial", "id")  # what COPY returns of each result written


def is_settled(status: str, attempts: int) -> bool:
    """A chunk that will not change any more: done, or failed with no attempt left."""
    return status == ChunkStatus.DONE or (
        status == ChunkStatus.FAILED and attempts >= settings.EVALGATE_CHUNK_MAX_ATTEMPTS
    )


def commit_without_flush() -> None:
    """The current transaction (a chunk's start or its write) commits without waiting for the
    WAL to reach the disk (PostgreSQL): 10-35 ms for a chunk's thousands of rows, and a
    synchronous commit of the next chunk's start waited for the previous chunk's rows.

    PostgreSQL stays consistent. A crash of the database within its wal_writer_delay can only
    lose such transactions whole, and nothing durable can depend on one: every later
    synchronous commit (the finaliser's verdict first) flushes the log up to itself, these
    included; a chunk whose job finished while its row is not done is lost work the reaper runs
    again, and one whose start was lost is simply started again."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def grade_chunk(chunk_id: int) -> None:
    """Produce and grade one chunk of a run, then write all of it in one transaction.

    Grading happens outside the transaction (it may be slow); the write re-checks the
    chunk under a row lock, so a chunk executed twice (a re-enqueue after a worker death)
    writes once. Progress counts move in the same transaction as the results.
    """
    with transaction.atomic():
        commit_without_flush()
        # Lock the chunk row only: chunks of one run must not queue behind each other on the run.
        chunk = (
            RunChunk.objects.select_for_update(of=("self",))
            .select_related("run__target__endpoint")
            .get(pk=chunk_id)
        )
        if chunk.status == ChunkStatus.DONE or chunk.run.status == RunStatus.CANCELLED:
            return
        chunk.status = ChunkStatus.RUNNING
        chunk.attempts += 1
        chunk.started_at = timezone.now()
        chunk.save(update_fields=["status", "attempts", "started_at"])
        Run.objects.filter(pk=chunk.run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=timezone.now()
        )
    try:
        results, grades = grade_cases(chunk.run, chunk.case_ids)
        _write_chunk(chunk.pk, results, grades)
    except Exception as exc:
        RunChunk.objects.filter(pk=chunk_id).exclude(status=ChunkStatus.DONE).update(
            status=ChunkStatus.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=timezone.now(),
        )
        if chunk.attempts < settings.EVALGATE_CHUNK_MAX_ATTEMPTS:
            if not uses_redis():
                # Embedded mode has no reaper process: retry here, within the same bound.
                job_id = chunk_job_id(chunk.run_id, chunk.index, chunk.attempts + 1)
                enqueue(grade_chunk, chunk_id, job_id=job_id)
            # With Redis, the reaper re-enqueues it, and that attempt settles it.
        else:
            _finalise_if_settled(chunk)
        raise
    _finalise_if_settled(chunk)


def _finalise_if_settled(chunk: RunChunk) -> None:
    """The chunk that settles last finalises the run (one indexed query per chunk): in a
    worker by calling the finaliser itself, in embedded mode by enqueueing it after commit.

    Not an RQ dependency of the finaliser on every chunk: enqueueing a job that depends on a
    thousand others WATCHes all of them, and every chunk a worker finished meanwhile restarted
    the enqueue, so a 100,000-case check request returned only once the run had been graded.
    Two chunks settling at once may both find the run settled: the update of the run's
    finaliser id lets one of them go on (a finaliser that runs twice changes nothing anyway).
    If the process dies between its write and this, the reaper finds the run settled with no
    finaliser in Redis and enqueues one.
    """
    unsettled = (
        RunChunk.objects.filter(run_id=chunk.run_id)
        .exclude(status=ChunkStatus.DONE)
        .exclude(status=ChunkStatus.FAILED, attempts__gte=settings.EVALGATE_CHUNK_MAX_ATTEMPTS)
    )
    if unsettled.exists():
        return
    current = get_current_job() if uses_redis() else None
    if current is not None:
        # In a worker, this job finalises the run itself, now: a finaliser job of its own
        # added its hand-off (enqueue, dequeue, a fork, a new database connection) to the time
        # from the last chunk to the verdict. The run records this job as its finaliser, so the
        # reaper judges it as any finaliser: if the worker dies inside, another is enqueued.
        job_id = current.id
    elif chunk.attempts == 1:
        job_id = finalise_job_id(chunk.run_id)
    else:
        job_id = f"{finalise_job_id(chunk.run_id)}-c{chunk.index}-a{chunk.attempts}"
    if Run.objects.filter(pk=chunk.run_id).exclude(finaliser_job_id=job_id).update(finaliser_job_id=job_id):
        if current is not None:
            finalise_run(chunk.run_id)
        else:
            enqueue(finalise_run, chunk.run_id, job_id=job_id)


def enqueue_finaliser(run_id: int, job_id: str) -> None:
    """Enqueue another finaliser for the run and remember its id, so the reaper judges it."""
    Run.objects.filter(pk=run_id).update(finaliser_job_id=job_id)
    enqueue(finalise_run, run_id, job_id=job_id)


def _write_chunk(chunk_id: int, results: list[Row], grades: dict[tuple[int, int], list[Row]]) -> None:
    with transaction.atomic():
        commit_without_flush()
        if connection.vendor == "postgresql":
            # Foreign keys checked as each COPY ends, not at the commit (Django's are deferred):
            # the same checks, ~30 ms for a chunk's 4,000 rows, before the chunk's finished_at,
            # so that stamp is when its write was done, not 30 ms before.
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        chunk = RunChunk.objects.select_for_update().get(pk=chunk_id)
        if chunk.status == ChunkStatus.DONE:
            return  # another execution of this chunk won the race; its writes stand
        # Rows an earlier execution already wrote stand as they are (the unique constraint on
        # (run, case, trial) would reject them anyway): the write is idempotent per result.
        # Unordered: CaseResult's default ordering joins the run to sort by its date (17 ms a
        # chunk, for a set).
        written = set(
            CaseResult.objects.filter(run_id=chunk.run_id, case_id__any_of=chunk.case_ids)
            .order_by()
            .values_list("case_id", "trial")
        )
        results = [r for r in results if (r["case_id"], r["trial"]) not in written]
        if connection.vendor == "postgresql":
            # COPY: the ORM's bulk insert (quoting, per-field preparation, SQL compilation) was
            # most of a chunk's time; the graders themselves are a few percent.
            rows = copy_insert(CaseResult, results, returning=("case_id", "trial", "id"))
            ids = {(case_id, trial): pk for case_id, trial, pk in rows}
        else:
            saved = CaseResult.objects.bulk_create([CaseResult(**r) for r in results])
            ids = {(r.case_id, r.trial): r.pk for r in saved}
        chunk_grades = []
        for result in results:
            slot = (result["case_id"], result["trial"])
            for grade in grades.get(slot, []):
                grade["case_result_id"] = ids[slot]
                chunk_grades.append(grade)
        if connection.vendor == "postgresql":
            copy_insert(Grade, chunk_grades)
        else:
            Grade.objects.bulk_create([Grade(**g) for g in chunk_grades])
        chunk.status = ChunkStatus.DONE
        chunk.error = ""
        chunk.finished_at = timezone.now()
        chunk.save(update_fields=["status", "error", "finished_at"])
        Run.objects.filter(pk=chunk.run_id).update(
            done_cases=F("done_cases") + len(results),
            error_cases=F("error_cases") + sum(1 for r in results if r.get("missing") or r.get("error")),
        )


def finalise_run(run_id: int) -> None:
    """Close a run once its chunks have run: summary, final status, and the run_finished signal.

    Runs after every chunk job has finished or failed. A run whose chunks did not all
    complete fails with the reason, so nothing waits on it forever.
    """
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.is_finished:
            return
        chunks = list(run.chunks.values_list("index", "status", "error", "attempts"))
        if any(not is_settled(status, attempts) for _, status, _, attempts in chunks):
            # A chunk failed with attempts left, or is being retried: the reaper or the retried
            # chunk itself finalises the run once every chunk has settled.
            logger.info("run %s: chunks still unsettled, finalising later", run_id)
            return
        unfinished = [(i, s, e) for i, s, e, _ in chunks if s != ChunkStatus.DONE]
        if unfinished:
            index, status, error = unfinished[0]
            run.error = f"{len(unfinished)} chunk(s) did not complete; chunk {index} is {status}: {error}"
        finish_run(run, RunStatus.FAILED if unfinished else RunStatus.SUCCEEDED)


def finish_run(run: Run, status: str) -> None:
    """Make ``run`` final (the caller holds its row lock): status, run_finished, summary.

    The signal is sent inside the transaction: the verdict is written with the run's final
    state or not at all, so a check never shows a finished run with a pending verdict. Its
    receivers may read the run's rows through ``rows`` (a check's verdict does): the summary
    is then made from that same read, instead of aggregating the run again."""
    run.status = status
    run.finished_at = timezone.now()
    run.started_at = run.started_at or run.finished_at
    tap = SummaryTap(run)
    run_finished.send(sender=Run, run=run, rows=tap.rows)
    # Aggregated in SQL, or streamed: flat with the run's size either way.
    run.summary = tap.summary if tap.summary is not None else summarise_run(run)
    if (spent := evaluation_cost(run)) is not None:
        run.summary["evaluation_cost"] = spent
    run.save()


def measure_alignment(proposal_id: int) -> None:
    """Judge an alignment proposal's held-out cases with its draft (grading_app.services.alignment)."""
    from grading_app.services.alignment import measure_proposal

    measure_proposal(proposal_id)
