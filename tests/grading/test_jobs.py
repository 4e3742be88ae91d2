"""The job path in embedded mode: chunks, finaliser, idempotent writes, progress on rows."""

import pytest
from django.conf import settings

from gates_app.choices import Verdict
from gates_app.models import Check
from gates_app.services import request_check
from grading_app import jobs
from grading_app.choices import ChunkStatus, RunStatus
from grading_app.models import CaseResult, Grade, Run, RunChunk
from grading_app.outputs import parse_outputs
from grading_app.services import start_run
from tests.factories import make_failure_class, make_grader, make_scenario, outputs_for

pytestmark = pytest.mark.django_db


def test_run_is_split_into_chunks_and_finalised_in_process(settings, django_capture_on_commit_callbacks):
    settings.EVALGATE_CHUNK_SIZE = 2
    settings.EVALGATE_CODE_CHUNK_SIZE = 2
    s = make_scenario(n_trusted=4, n_monitoring=3)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = start_run(dataset=s["dataset"], candidate="v1", outputs=parse_outputs(outputs_for(s["cases"])))
    assert len(callbacks) == 2  # 4 chunks of <= 2 cases together (enqueue_each), then the finaliser
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert (run.done_cases, run.total_cases, run.error_cases) == (7, 7, 0)
    assert list(run.chunks.values_list("status", flat=True)) == [ChunkStatus.DONE] * 4
    assert CaseResult.objects.filter(run=run).count() == 7
    assert Grade.objects.filter(case_result__run=run, passed=True).count() == 7
    assert run.summary["graders"]["answer-exact"]["pass_rate"] == 1.0
    assert run.summary["by_tier"]["trusted"]["signals"]["cases"] == 4


def test_running_a_chunk_twice_writes_nothing_twice(django_capture_on_commit_callbacks):
    s = make_scenario()
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=s["dataset"], candidate="v1", outputs=parse_outputs(outputs_for(s["cases"])))
    chunk = RunChunk.objects.get(run=run)
    jobs.grade_chunk(chunk.pk)
    chunk.status = ChunkStatus.RUNNING  # as if a worker died after writing but a reaper retried
    chunk.save()
    jobs.grade_chunk(chunk.pk)
    run.refresh_from_db()
    assert CaseResult.objects.filter(run=run).count() == 6
    assert Grade.objects.filter(case_result__run=run).count() == 6
    assert run.done_cases == 6


def test_cases_without_output_are_recorded_missing_not_graded(django_capture_on_commit_callbacks):
    s = make_scenario()
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(
            dataset=s["dataset"], candidate="v1", outputs=parse_outputs(outputs_for(s["cases"][2:]))
        )
    missing = CaseResult.objects.filter(run=run, missing=True)
    assert sorted(missing.values_list("case__key", flat=True)) == ["t0", "t1"]
    assert not Grade.objects.filter(case_result__in=missing).exists()
    assert Run.objects.get(pk=run.pk).error_cases == 2


def test_a_grader_that_breaks_records_an_error_never_a_pass(django_capture_on_commit_callbacks):
    s = make_scenario()
    make_grader("shape", kind="regex")
    s["cases"][0].expected = {"answer": "No", "pattern": "(unclosed"}
    s["cases"][0].save()
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=s["dataset"], candidate="v1", outputs=parse_outputs(outputs_for(s["cases"])))
    grade = Grade.objects.get(case_result__run=run, grader__slug="shape")
    assert grade.passed is None
    assert "invalid pattern" in grade.error


def test_graders_apply_only_to_their_failure_classes(django_capture_on_commit_callbacks):
    s = make_scenario()
    make_grader("other-only", kind="exact_match", failure_classes=[make_failure_class("other")])
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=s["dataset"], candidate="v1", outputs=parse_outputs(outputs_for(s["cases"])))
    assert not Grade.objects.filter(case_result__run=run, grader__slug="other-only").exists()


def test_a_failed_chunk_fails_the_run_and_makes_the_check_inconclusive(django_capture_on_commit_callbacks):
    s = make_scenario()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        check, _ = request_check(gate=s["gate"], candidate="v1", outputs=outputs_for(s["cases"]))
    run = check.run
    # A custom grader kind the run pinned is no longer installed: the chunk cannot complete.
    run.grader_snapshot = [{**run.grader_snapshot[0], "kind": "removed_custom_kind"}]
    run.save()
    chunk = RunChunk.objects.get(run=run)
    # Embedded mode retries the chunk in-process (there is no reaper), up to the limit.
    with django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()
    check = Check.objects.get(pk=check.pk)
    assert check.run.status == RunStatus.FAILED
    assert "did not complete" in check.run.error
    chunk.refresh_from_db()
    assert (chunk.status, chunk.attempts) == (ChunkStatus.FAILED, settings.EVALGATE_CHUNK_MAX_ATTEMPTS)
    assert check.verdict == Verdict.INCONCLUSIVE
    assert check.release_allowed is False


def test_finaliser_is_idempotent(django_capture_on_commit_callbacks):
    s = make_scenario()
    with django_capture_on_commit_callbacks(execute=True):
        check, _ = request_check(gate=s["gate"], candidate="v1", outputs=outputs_for(s["cases"]))
    check.refresh_from_db()
    decided_at = check.decided_at
    jobs.finalise_run(check.run_id)
    check.refresh_from_db()
    assert check.decided_at == decided_at
    assert check.verdict == Verdict.PASS


def test_the_chunk_that_settles_last_enqueues_the_finaliser_once(
    settings, monkeypatch, django_capture_on_commit_callbacks
):
    # No RQ dependency on every chunk (enqueueing one WATCHes them all, and a busy worker kept
    # restarting it): the last chunk to settle enqueues the finaliser, after every chunk is done.
    settings.EVALGATE_CHUNK_SIZE = 2
    settings.EVALGATE_CODE_CHUNK_SIZE = 2
    s = make_scenario(n_trusted=4, n_monitoring=3)
    finalisers = []
    enqueue = jobs.enqueue

    def recording(func, *args, job_id, **kwargs):
        if func is jobs.finalise_run:
            statuses = set(RunChunk.objects.filter(run_id=args[0]).values_list("status", flat=True))
            finalisers.append((job_id, statuses))
        return enqueue(func, *args, job_id=job_id, **kwargs)

    monkeypatch.setattr(jobs, "enqueue", recording)
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=s["dataset"], candidate="v1", outputs=parse_outputs(outputs_for(s["cases"])))
    assert finalisers == [(f"run-{run.pk}-finalise", {ChunkStatus.DONE})]
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.finaliser_job_id == f"run-{run.pk}-finalise"

    # Two chunks finding the run settled at the same moment: only one of them enqueues.
    Run.objects.filter(pk=run.pk).update(finaliser_job_id="")
    last, other = RunChunk.objects.filter(run=run).order_by("-index")[:2]
    jobs._finalise_if_settled(last)
    jobs._finalise_if_settled(other)
    assert len(finalisers) == 2  # the first run's, and one more


def test_a_chunk_with_attempts_left_does_not_finalise_the_run(settings, monkeypatch):
    s = make_scenario(n_trusted=2, n_monitoring=0)
    run = start_run(dataset=s["dataset"], candidate="v1", outputs=parse_outputs(outputs_for(s["cases"])))
    chunk = RunChunk.objects.get(run=run)
    RunChunk.objects.filter(pk=chunk.pk).update(status=ChunkStatus.FAILED, attempts=1)
    chunk.refresh_from_db()
    enqueued = []
    monkeypatch.setattr(jobs, "enqueue", lambda func, *args, job_id, **kw: enqueued.append(job_id))
    jobs._finalise_if_settled(chunk)
    assert enqueued == []  # it will be retried: the run is not settled
    RunChunk.objects.filter(pk=chunk.pk).update(attempts=settings.EVALGATE_CHUNK_MAX_ATTEMPTS)
    chunk.refresh_from_db()
    jobs._finalise_if_settled(chunk)
    assert enqueued == [f"run-{run.pk}-finalise-c0-a{settings.EVALGATE_CHUNK_MAX_ATTEMPTS}"]
