"""Redis forgetting every job mid-run is noticed by the reaper: the run completes anyway."""

import time

import redis

from gates_app.models import Check
from gates_app.services import request_check
from grading_app.choices import RunStatus
from grading_app.models import CaseResult
from grading_app.reaper import reap
from tests.factories import make_scenario, outputs_for
from tests.integration.conftest import start_worker, stop_worker, wait_for_workers


def test_a_run_whose_jobs_redis_lost_is_re_enqueued_and_completes(
    postgres_url, redis_url, settings, tmp_path
):
    settings.EVALGATE_CHUNK_SIZE = 2
    settings.EVALGATE_CODE_CHUNK_SIZE = 2
    s = make_scenario(n_trusted=6, n_monitoring=0)
    check, _ = request_check(gate=s["gate"], candidate="v1", outputs=outputs_for(s["cases"]))
    redis.Redis.from_url(redis_url).flushdb()  # the jobs are gone before any worker saw them

    worker = start_worker(postgres_url, redis_url, name="after-flush", log_dir=tmp_path)
    try:
        wait_for_workers(redis_url, [worker], tmp_path)
        report = reap()
        assert len(report.requeued) == 3
        deadline = time.monotonic() + 60
        check.refresh_from_db()
        while check.status != "done":
            assert time.monotonic() < deadline, "the run was left unfinished"
            time.sleep(0.5)
            reap()  # the finaliser was lost too: the reaper enqueues a new one once chunks settle
            check.refresh_from_db()
    finally:
        stop_worker(worker)
    check = Check.objects.select_related("run").get(pk=check.pk)
    assert check.run.status == RunStatus.SUCCEEDED
    assert CaseResult.objects.filter(run=check.run).count() == 6
    assert check.verdict == "pass"
