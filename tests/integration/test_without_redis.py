"""Issue 12: Redis goes away. Reads keep answering from PostgreSQL, /readyz says what is down,
a check requested meanwhile is accepted, and a busy worker waits for Redis instead of exiting;
once Redis is back the reaper re-enqueues what was lost and the checks are decided."""

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import tests.integration.slow_grader  # noqa: F401  (registers slow_exact_match here too)
from gates_app.models import Check
from gates_app.services import request_check
from grading_app.reaper import reap
from tests.factories import make_grader, make_scenario, make_token, outputs_for
from tests.integration.conftest import _require, start_worker, stop_worker, wait_for_workers, worker_log


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test's own, on a free port, that the test stops and starts."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def private_redis(tmp_path: Path, settings) -> Iterator[PrivateRedis]:
    _require(shutil.which("redis-server") is not None, "redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url
    settings.RQ_QUEUES = {"default": {"URL": server.url, "DEFAULT_TIMEOUT": 300}}
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": server.url,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    yield server
    server.stop()


def test_the_api_and_the_workers_outlive_a_redis_outage(
    postgres_url, private_redis, api_client, settings, tmp_path
):
    settings.EVALGATE_CHUNK_SIZE = 100
    settings.EVALGATE_CODE_CHUNK_SIZE = 100
    settings.EVALGATE_WORKER_STALE_S = 3
    s = make_scenario(n_trusted=300, n_monitoring=0)
    make_grader("slow", kind="slow_exact_match")  # ~1 s per chunk of 300 cases
    env = {"EVALGATE_WORKER_HEARTBEAT_S": "1", "EVALGATE_GRADER_MODULES": "tests.integration.slow_grader"}
    worker = start_worker(postgres_url, private_redis.url, name="survivor", log_dir=tmp_path, extra_env=env)
    secret = make_token([s["gate"]])
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    try:
        wait_for_workers(private_redis.url, [worker], tmp_path)
        first, _ = request_check(gate=s["gate"], candidate="before", outputs=outputs_for(s["cases"]))
        deadline = time.monotonic() + 60
        while not first.run.chunks.filter(status="running").exists():  # the worker is busy
            assert time.monotonic() < deadline, worker_log(tmp_path, "survivor")
            time.sleep(0.05)

        private_redis.stop()

        # Reads answer from PostgreSQL; readiness names the dependency that is down.
        detail = api_client.get(f"/api/v1/checks/{first.pk}/", **auth)
        assert detail.status_code == 200, detail.content
        verdict = api_client.get(f"/api/v1/gates/{s['gate'].slug}/verdict/?candidate=before", **auth)
        assert verdict.status_code == 200
        ready = api_client.get("/readyz")
        assert ready.status_code == 503
        assert (ready.json()["database"], ready.json()["redis"][:6]) == ("ok", "error:")
        # A check asked for now is accepted: its rows are the truth, its jobs wait for Redis.
        body = {"candidate": "during", "outputs": outputs_for(s["cases"])}
        during = api_client.post(f"/api/v1/gates/{s['gate'].slug}/checks/", body, format="json", **auth)
        assert during.status_code == 202, during.content

        time.sleep(4)  # the busy worker finishes its chunk and meets the outage
        assert worker.poll() is None, "the worker exited:\n" + worker_log(tmp_path, "survivor")
        private_redis.start()  # an empty Redis: every job it held is gone

        deadline = time.monotonic() + 120
        checks = Check.objects.filter(candidate__in=["before", "during"])
        while set(checks.values_list("status", flat=True)) != {"done"}:
            assert time.monotonic() < deadline, worker_log(tmp_path, "survivor")
            assert worker.poll() is None, worker_log(tmp_path, "survivor")
            reap()  # what the reaper's cron does every minute
            time.sleep(1)
    finally:
        stop_worker(worker)
    assert set(checks.values_list("verdict", flat=True)) == {"pass"}
    log = worker_log(tmp_path, "survivor")
    assert "lost Redis" in log and "Redis is back; working again" in log
    assert "unhandled exception, quitting" not in log
    assert api_client.get("/readyz").status_code == 200
