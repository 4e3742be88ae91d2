"""Real services for integration tests: PostgreSQL, Redis and `manage.py rqworker` processes.

Locally they skip when a service is missing; with CI=true a missing service fails the run,
so CI can never pass by skipping them.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[2]


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"integration prerequisite missing in CI: {reason}")
    pytest.skip(reason)


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1
        ):
            return True
    except OSError:
        return False


def _per_worker(url: str) -> str:
    """Parallel test processes (pytest-xdist gw0, gw1, ...) each get a Redis database of their
    own, counting down from the configured one, so one's flushdb never touches another's jobs."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    parsed = urlparse(url)
    base = int(parsed.path.lstrip("/") or 0)
    number = (base - int(worker[2:])) % 16
    return parsed._replace(path=f"/{number}").geturl()


@pytest.fixture
def redis_url(settings) -> Iterator[str]:
    """A Redis database of its own, flushed before and after; jobs go through RQ from here on."""
    url = _per_worker(os.environ.get("EVALGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    _require(_reachable(url, 6379), f"Redis is not reachable at {url}")
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    settings.REDIS_URL = url
    settings.RQ_QUEUES = {"default": {"URL": url, "DEFAULT_TIMEOUT": 300}}
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(autouse=True)
def restore_migrated_data(django_db_serialized_rollback: None) -> None:
    """Transactional tests truncate every table afterwards; serialized rollback puts back what
    migrations created (the role groups), so every later test still finds them."""


@pytest.fixture
def postgres_url(transactional_db) -> str:
    """The URL of the test database this process uses, for worker processes to share."""
    _require(connection.vendor == "postgresql", "the suite is not running on PostgreSQL (set DATABASE_URL)")
    params = connection.settings_dict
    user = params.get("USER") or "postgres"
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    host = params.get("HOST") or "127.0.0.1"
    port = params.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{params['NAME']}"


def start_worker(
    database_url: str, redis_url: str, *, name: str, log_dir: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen:
    """A real `manage.py rqworker default` process with its own environment."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DEBUG": "true",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    log = open(log_dir / f"{name}.log", "wb")  # noqa: SIM115  (closed by stop_worker)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "default", "--name", name],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    process.log_file = log  # type: ignore[attr-defined]
    return process


def stop_worker(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    process.log_file.close()  # type: ignore[attr-defined]


def worker_log(tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def wait_for_workers(redis_url: str, processes: list[subprocess.Popen], log_dir: Path) -> None:
    """Block until every worker process has registered with Redis (fail if one died)."""
    import redis
    from rq import Worker

    connection_ = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 30
    while len(Worker.all(connection=connection_)) < len(processes):
        if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
            logs = "".join(path.read_text(errors="replace") for path in log_dir.glob("*.log"))
            pytest.fail(f"rqworker did not start:\n{logs}")
        time.sleep(0.2)
    connection_.close()


@pytest.fixture
def rq_worker(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[subprocess.Popen]:
    """One rqworker process on the test database and Redis, stopped after the test."""
    process = start_worker(postgres_url, redis_url, name="worker-1", log_dir=tmp_path)
    wait_for_workers(redis_url, [process], tmp_path)
    yield process
    stop_worker(process)
