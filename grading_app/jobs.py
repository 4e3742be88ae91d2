"""RQ job functions: primary keys in, state on database rows, safe to run twice.

The same functions run on ``manage.py rqworker`` (REDIS_URL set) and in-process after
commit (embedded mode); evalproject.queues.enqueue() decides which.
"""

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from grading_app.choices import ChunkStatus, RunStatus
from grading_app.execution import grade_cases
from grading_app.models import CaseResult, Grade, Run, RunChunk
from grading_app.results import load_case_rows
from grading_app.signals import run_finished
from grading_app.summary import summarise

logger = logging.getLogger(__name__)


def grade_chunk(chunk_id: int) -> None:
    """Produce and grade one chunk of a run, then write all of it in one transaction.

    Grading happens outside the transaction (it may be slow); the write re-checks the
    chunk under a row lock, so a chunk executed twice (a re-enqueue after a worker death)
    writes once. Progress counts move in the same transaction as the results.
    """
    with transaction.atomic():
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
        raise


def _write_chunk(chunk_id: int, results: list[CaseResult], grades: dict[int, list[Grade]]) -> None:
    with transaction.atomic():
        chunk = RunChunk.objects.select_for_update().get(pk=chunk_id)
        if chunk.status == ChunkStatus.DONE:
            return  # another execution of this chunk won the race; its writes stand
        # Rows an earlier execution already wrote stand as they are (the unique constraint
        # on (run, case) would reject them anyway): the write is idempotent per case.
        written = set(
            CaseResult.objects.filter(run_id=chunk.run_id, case_id__in=chunk.case_ids).values_list(
                "case_id", flat=True
            )
        )
        results = [r for r in results if r.case_id not in written]
        CaseResult.objects.bulk_create(results)
        for result in results:
            for grade in grades.get(result.case_id, []):
                grade.case_result_id = result.pk
        Grade.objects.bulk_create([g for r in results for g in grades.get(r.case_id, [])])
        chunk.status = ChunkStatus.DONE
        chunk.error = ""
        chunk.finished_at = timezone.now()
        chunk.save(update_fields=["status", "error", "finished_at"])
        Run.objects.filter(pk=chunk.run_id).update(
            done_cases=F("done_cases") + len(results),
            error_cases=F("error_cases") + sum(1 for r in results if r.missing or r.error),
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
        chunks = list(run.chunks.values_list("index", "status", "error"))
        unfinished = [(i, s, e) for i, s, e in chunks if s != ChunkStatus.DONE]
        if unfinished:
            index, status, error = unfinished[0]
            run.status = RunStatus.FAILED
            run.error = f"{len(unfinished)} chunk(s) did not complete; chunk {index} is {status}: {error}"
        else:
            run.status = RunStatus.SUCCEEDED
        run.summary = summarise(load_case_rows(run))
        run.finished_at = timezone.now()
        run.started_at = run.started_at or run.finished_at
        run.save()
        # Inside the transaction: the verdict is written with the run's final state or
        # not at all, so a check never shows a finished run with a pending verdict.
        run_finished.send(sender=Run, run=run)
