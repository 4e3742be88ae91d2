"""A worker SIGKILLed mid-run loses and duplicates nothing: the reaper re-enqueues its chunks."""

import os
import signal
import time
from pathlib import Path

import redis
from django.db.models import Count
from rq import Worker

import tests.integration.slow_grader  # noqa: F401  (registers slow_exact_match here too)
from datasets_app.choices import CaseStatus, Tier
from datasets_app.models import Case
from gates_app.models import Check
from gates_app.services import request_check
from grading_app.choices import RunStatus
from grading_app.models import CaseResult, Grade, RunChunk
from grading_app.reaper import reap
from tests.factories import make_grader, make_scenario
from tests.integration.conftest import start_worker, stop_worker, wait_for_workers, worker_log

CASES = 2000


def children_of(pid: int) -> list[int]:
    """Direct children of a process (an RQ worker's work horse), read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def add_cases(s: dict) -> None:
    """2,000 active trusted cases, written in bulk (the lifecycle is not under test here)."""
    template = s["cases"][0]
    Case.objects.bulk_create(
        Case(
            dataset=s["dataset"],
            key=f"bulk-{i:04d}",
            tier=Tier.TRUSTED,
            status=CaseStatus.ACTIVE,
            failure_class=template.failure_class,
            input=template.input,
            expected={"answer": "No", "contains": ["No"], "pattern": "^No"},
        )
        for i in range(CASES - len(s["cases"]))
    )
    Case.objects.filter(dataset=s["dataset"]).update(
        expected={"answer": "No", "contains": ["No"], "pattern": "^No"}
    )


def run_to_the_end(check: Check, deadline_s: float) -> Check:
    """What the periodic reaper does in production, every second here."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        check.refresh_from_db()
        check.run.refresh_from_db()
        if check.run.is_finished and check.status == "done":
            return check
        reap()
        time.sleep(1)
    raise AssertionError(f"run {check.run_id} did not finish: {check.run.status}")


def test_sigkilled_worker_loses_and_duplicates_nothing(
    postgres_url, redis_url, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.EVALGATE_CHUNK_SIZE = 50
    settings.EVALGATE_CODE_CHUNK_SIZE = 50
    settings.EVALGATE_WORKER_STALE_S = 4
    s = make_scenario(n_trusted=2, n_monitoring=0)
    add_cases(s)
    make_grader("contains-no", kind="contains")
    make_grader("starts-no", kind="regex")
    make_grader("slow", kind="slow_exact_match")
    outputs = [{"case": c.key, "output": "No", "metrics": {"latency_ms": 700}} for c in Case.objects.all()]
    env = {"EVALGATE_WORKER_HEARTBEAT_S": "1", "EVALGATE_GRADER_MODULES": "tests.integration.slow_grader"}
    workers = [
        start_worker(postgres_url, redis_url, name=f"crash-{n}", log_dir=tmp_path, extra_env=env)
        for n in (1, 2)
    ]
    try:
        wait_for_workers(redis_url, workers, tmp_path)
        interrupted, _ = request_check(gate=s["gate"], candidate="interrupted", outputs=outputs)
        # Kill worker 1 and its work horse while it is in the middle of a chunk.
        connection = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, worker_log(tmp_path, "crash-1")
            worker = Worker.find_by_key(
                Worker.redis_worker_namespace_prefix + "crash-1", connection=connection
            )
            job_id = worker.get_current_job_id() if worker else None
            horses = children_of(workers[0].pid)
            if job_id and horses and RunChunk.objects.filter(job_id=job_id, status="running").exists():
                for pid in [*horses, workers[0].pid]:
                    os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        interrupted = run_to_the_end(interrupted, 180)

        # The same candidate again, on two healthy workers: the verdict must not differ.
        workers.append(start_worker(postgres_url, redis_url, name="crash-3", log_dir=tmp_path, extra_env=env))
        wait_for_workers(redis_url, workers[1:], tmp_path)
        uninterrupted, _ = request_check(gate=s["gate"], candidate="uninterrupted", outputs=outputs)
        uninterrupted = run_to_the_end(uninterrupted, 180)
    finally:
        for worker in workers:
            stop_worker(worker)

    run = interrupted.run
    assert run.status == RunStatus.SUCCEEDED, run.error
    results = CaseResult.objects.filter(run=run)
    assert results.count() == CASES
    assert results.values("case").distinct().count() == CASES
    grades = Grade.objects.filter(case_result__run=run)
    assert grades.count() == CASES * 4  # exact, contains, regex, slow: one each per case
    assert not grades.values("case_result", "grader").annotate(n=Count("pk")).filter(n__gt=1).exists()
    retried = RunChunk.objects.filter(run=run, job_id__contains="-r")
    assert retried.exists(), "the killed worker's chunk should have been re-enqueued"
    assert run.done_cases == CASES
    assert interrupted.verdict == uninterrupted.verdict
    outcomes = [(r["name"], r["outcome"], r["value"], r["n"]) for r in interrupted.rule_results]
    assert outcomes == [(r["name"], r["outcome"], r["value"], r["n"]) for r in uninterrupted.rule_results]
