"""Issue 12: a worker SIGKILLed inside a finaliser leaves the check pending only until its
heartbeat goes stale; one reaper pass after that decides it."""

import os
import signal
import subprocess
import sys
import time

import redis

from gates_app.models import Check
from gates_app.services import request_check
from grading_app.models import Run
from grading_app.reaper import reap
from tests.factories import make_scenario, outputs_for
from tests.integration.conftest import REPO, start_worker, stop_worker, wait_for_workers, worker_log
from tests.integration.slow_finaliser import MARKER
from tests.integration.test_crash_recovery import children_of

STALE_S = 3


def test_a_worker_killed_inside_a_finaliser_is_noticed_by_its_heartbeat(
    postgres_url, redis_url, settings, tmp_path
):
    settings.EVALGATE_WORKER_STALE_S = STALE_S
    env = {
        **os.environ,
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "DEBUG": "true",
        "EVALGATE_WORKER_HEARTBEAT_S": "1",
        "EVALGATE_TEST_FINALISER_SLEEP_S": "120",
    }
    log = open(tmp_path / "slow.log", "wb")  # noqa: SIM115
    slow = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "rqworker",
            "default",
            "--name",
            "slow-finaliser",
            "--worker-class",
            "tests.integration.slow_finaliser.Worker",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    connection = redis.Redis.from_url(redis_url)
    s = make_scenario()
    healthy = None
    try:
        wait_for_workers(redis_url, [slow], tmp_path)
        check, _ = request_check(gate=s["gate"], candidate="v1", outputs=outputs_for(s["cases"]))
        deadline = time.monotonic() + 60
        while connection.get(MARKER) is None:
            assert time.monotonic() < deadline, (tmp_path / "slow.log").read_text()
            time.sleep(0.05)
        for pid in [*children_of(slow.pid), slow.pid]:
            os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        check.refresh_from_db()
        assert check.status != "done"  # the verdict died with the finaliser's transaction

        healthy = start_worker(postgres_url, redis_url, name="healthy", log_dir=tmp_path)
        wait_for_workers(redis_url, [healthy], tmp_path)
        assert reap().finalised == []  # within the stale window the finaliser still counts as alive
        time.sleep(max(0.0, STALE_S + 1 - (time.monotonic() - killed_at)))
        report = reap()  # the one reaper pass after the window
        assert report.finalised == [check.run_id]
        deadline = time.monotonic() + 30
        while check.status != "done":
            assert time.monotonic() < deadline, worker_log(tmp_path, "healthy")
            time.sleep(0.2)
            check.refresh_from_db()
    finally:
        if slow.poll() is None:
            os.killpg(slow.pid, signal.SIGKILL)
        log.close()
        if healthy is not None:
            stop_worker(healthy)
    check = Check.objects.get(pk=check.pk)
    assert (check.verdict, Run.objects.get(pk=check.run_id).status) == ("pass", "succeeded")
