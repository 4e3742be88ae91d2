"""Shared set-up for benchmark scripts: a throwaway database, Django, and how results are printed."""

import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "benchmarks"
# The server the scratch databases are created on (connect to its maintenance database).
POSTGRES_URL = os.environ.get("EVALGATE_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
# Benchmarks own this Redis database: they flush it before and after use.
REDIS_URL = os.environ.get("EVALGATE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def _exit_on_sigterm(signum: int, frame: object) -> NoReturn:
    # run_all stops an overrunning script with SIGTERM: unwinding runs the `finally` blocks
    # that stop subprocesses and drop the scratch database.
    sys.exit(128 + signum)


@functools.cache
def scratch_dir() -> str:
    """This run's directory: server and worker logs, and the SQLite file if it comes to that."""
    return tempfile.mkdtemp(prefix="evalgate-bench-")


def reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1
        ):
            return True
    except OSError:
        return False


def bench_environment(redis_url: str | None = None) -> None:
    """Environment shared by the benchmark process and the servers and workers it starts.

    DEBUG is off as in production: with it on, Django formats and keeps every query it runs,
    which alone slows bulk writes measurably. Jobs run in-process unless ``redis_url`` is given.
    """
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    os.environ["EVALGATE_VAR_DIR"] = scratch_dir()  # never the checkout's var/ (its SQLite file)
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "evalgate-benchmarks-only-not-a-secret")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    else:
        os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalproject.settings")
    for name in PROXY_VARS:
        os.environ.pop(name, None)  # traffic stays on 127.0.0.1


def django_on_scratch_database(redis_url: str | None = None) -> Path:
    """Configure Django on a SQLite file in this run's scratch directory (unless DATABASE_URL is
    set) and migrate it; returns the scratch directory."""
    bench_environment(redis_url)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return Path(os.environ["EVALGATE_VAR_DIR"])


@contextmanager
def scratch_postgres_database() -> Iterator[str | None]:
    """Create ``evalgate_bench_<pid>`` on the local PostgreSQL server, yield its URL, drop it after.

    Yields None when the server cannot be reached, so the caller can fall back to SQLite.
    """
    if not reachable(POSTGRES_URL, 5432):
        yield None
        return
    import psycopg

    name = f"evalgate_bench_{os.getpid()}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield urlparse(POSTGRES_URL)._replace(path=f"/{name}").geturl()
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            # FORCE ends sessions a killed worker or server may have left behind (PostgreSQL 13+).
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def django_on_postgres(redis_url: str | None = None) -> Iterator[str]:
    """Django on a migrated scratch PostgreSQL database; yields its URL (or SQLite's, noted)."""
    bench_environment(redis_url)
    with scratch_postgres_database() as url:
        if url is None:
            print(
                f"NOTE: PostgreSQL is unreachable at {POSTGRES_URL}: falling back to SQLite. "
                "These numbers are not comparable with the PostgreSQL ones in benchmarks/README.md."
            )
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = url
        django_on_scratch_database(redis_url)
        from django.conf import settings

        try:
            yield settings.DATABASES["default"]["NAME"] if url is None else url
        except BaseException:
            print(f"Logs of the servers and workers are kept in {scratch_dir()}", file=sys.stderr)
            raise
    shutil.rmtree(scratch_dir(), ignore_errors=True)


def database_label() -> str:
    from django.db import connection

    return "PostgreSQL" if connection.vendor == "postgresql" else connection.vendor


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def start_process(args: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen:
    """A child in its own session (stop_process ends its whole group), output to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def print_ratio(name: str, value: float, target: str = "") -> None:
    """One ratio per line, in the form run_all.py collects for its summary table."""
    print(f"ratio: {name} = {value:.2f}" + (f" (target: {target})" if target else ""), flush=True)
