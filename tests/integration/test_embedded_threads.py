"""Embedded mode on PostgreSQL runs a run's chunks on EVALGATE_EMBEDDED_THREADS threads of the
process that started it (evalproject.queues.enqueue_each): one chunk's write waits on the
database while another grades. Commits are real here (transactional tests): another thread's
connection sees committed rows only."""

import threading

from django.db import connection

from audit_app.context import acting_via, current_via
from evalproject.queues import enqueue_each
from grading_app import jobs
from grading_app.choices import ChunkStatus, RunStatus
from grading_app.models import CaseResult, Grade
from grading_app.outputs import parse_outputs
from grading_app.services import start_run
from tests.factories import make_endpoint, make_grader, make_rubric_version, make_scenario, outputs_for


def backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


def watch_chunks(monkeypatch) -> list[tuple[str, str]]:
    """(thread name, audit via) of every chunk job as it runs."""
    seen: list[tuple[str, str]] = []
    grade_chunk = jobs.grade_chunk

    def watched(chunk_id: int) -> None:
        seen.append((threading.current_thread().name, current_via()))
        grade_chunk(chunk_id)

    monkeypatch.setattr(jobs, "grade_chunk", watched)
    return seen


def test_a_runs_chunks_share_two_threads_and_each_is_written_once(postgres_url, settings, monkeypatch):
    settings.EVALGATE_CODE_CHUNK_SIZE = 2
    settings.EVALGATE_EMBEDDED_THREADS = 2
    seen = watch_chunks(monkeypatch)
    s = make_scenario(n_trusted=9, n_monitoring=5)  # 14 cases: 7 chunks
    before = backends()
    with acting_via("command"):
        run = start_run(dataset=s["dataset"], candidate="v1", outputs=parse_outputs(outputs_for(s["cases"])))
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.done_cases, run.total_cases, run.error_cases) == (14, 14, 0)
    assert list(run.chunks.values_list("status", "attempts")) == [(ChunkStatus.DONE, 1)] * 7
    assert CaseResult.objects.filter(run=run).count() == 14
    assert Grade.objects.filter(case_result__run=run, passed=True).count() == 14
    assert run.summary["graders"]["answer-exact"]["pass_rate"] == 1.0
    assert len(seen) == 7
    assert {name for name, _ in seen} == {"MainThread", "evalgate-job-1"}  # both took chunks
    assert {via for _, via in seen} == {"command"}  # the helper runs in the caller's context
    assert backends() == before  # the helper's connection closed with it


def test_a_run_that_calls_models_runs_its_chunks_one_at_a_time(postgres_url, settings, monkeypatch):
    # Two chunks at once would put twice the endpoint's max_concurrency calls in flight from one
    # process; a worker keeps one chunk at a time, and so does an embedded process.
    settings.EVALGATE_CHUNK_SIZE = 2
    settings.EVALGATE_EMBEDDED_THREADS = 2
    seen: list[str] = []
    monkeypatch.setattr(jobs, "grade_chunk", lambda chunk_id: seen.append(threading.current_thread().name))
    s = make_scenario(n_trusted=5, n_monitoring=3)
    version = make_rubric_version(make_endpoint("http://127.0.0.1:9", max_concurrency=2))
    make_grader("judge", kind="llm_judge", rubric=version.rubric)
    start_run(dataset=s["dataset"], candidate="v1", outputs=parse_outputs(outputs_for(s["cases"])))
    assert seen == ["MainThread"] * 4


def test_one_thread_when_configured(postgres_url, settings, monkeypatch):
    settings.EVALGATE_CODE_CHUNK_SIZE = 2
    settings.EVALGATE_EMBEDDED_THREADS = 1
    seen = watch_chunks(monkeypatch)
    s = make_scenario(n_trusted=3, n_monitoring=3)
    run = start_run(dataset=s["dataset"], candidate="v1", outputs=parse_outputs(outputs_for(s["cases"])))
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert [name for name, _ in seen] == ["MainThread"] * 3


def test_a_failing_job_does_not_stop_the_others(postgres_url, settings):
    settings.EVALGATE_EMBEDDED_THREADS = 2
    ran: list[int] = []

    def job(n: int) -> None:
        ran.append(n)
        if n == 2:
            raise RuntimeError("this one fails")  # recorded on its row by a real job; logged here

    from django.db import transaction

    with transaction.atomic():
        enqueue_each(job, [((n,), f"job-{n}") for n in range(6)])
    assert sorted(ran) == list(range(6))


def test_jobs_run_in_the_calling_thread_while_its_transaction_is_still_open(
    db, settings, django_capture_on_commit_callbacks
):
    # A test's transaction never commits: another thread's connection would not see its rows.
    settings.EVALGATE_EMBEDDED_THREADS = 2
    names: list[str] = []
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_each(
            lambda n: names.append(threading.current_thread().name), [((n,), f"j{n}") for n in range(4)]
        )
    assert names == ["MainThread"] * 4
