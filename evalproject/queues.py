"""enqueue(): the one seam between Evalgate's code and its job queue.

With ``REDIS_URL`` set, jobs go to django-rq's ``default`` queue once the surrounding
transaction commits (django-rq's ``on_db_commit`` mode). Without it (the embedded default)
the same job function runs in this process after commit: RQ's own synchronous mode still
needs a Redis server, so it cannot serve here. Either way job functions take primary keys
and keep their state on database rows, so callers never ask the queue how a job went.
"""

import contextlib
import contextvars
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

QUEUE_NAME = "default"


def uses_redis() -> bool:
    """True when jobs go to RQ workers; False when they run in-process (embedded mode)."""
    return bool(settings.REDIS_URL)


def enqueue(
    func: Callable[..., Any],
    *args: Any,
    job_id: str,
    depends_on: Sequence[str] = (),
    description: str = "",
) -> None:
    """Run ``func(*args)`` as a background job after the current transaction commits.

    ``job_id`` is chosen by the caller, so a job can be found (and re-enqueued by the
    reaper) from the database row that mirrors it. ``depends_on`` lists job ids that must
    finish first; the dependent job runs even if one of them failed, because job functions
    read the outcome from the database and decide there.
    """
    if uses_redis():
        _enqueue_rq(func, args, job_id=job_id, depends_on=depends_on, description=description)
    else:
        # on_commit keeps registration order, so chunks enqueued before their finaliser run
        # before it, as RQ's dependency would order them.
        transaction.on_commit(lambda: _run_inline(func, args, job_id), robust=True)


def enqueue_each(func: Callable[..., Any], jobs: Sequence[tuple[Sequence[Any], str]]) -> None:
    """Enqueue ``func(*args)`` once per ``(args, job_id)`` of ``jobs``: independent jobs that
    may run at the same time (a run's chunks). With Redis, each is enqueued as by enqueue().
    In embedded mode they run after commit on ``EVALGATE_EMBEDDED_THREADS`` threads of this
    process, each with its own database connection (PostgreSQL only), so one job's write waits
    on the database while another grades; the caller gets control back when all have run."""
    if uses_redis():
        for args, job_id in jobs:
            enqueue(func, *args, job_id=job_id)
    elif jobs:
        transaction.on_commit(lambda: _run_all_inline(func, list(jobs)), robust=True)


def _run_all_inline(func: Callable[..., Any], jobs: list[tuple[Sequence[Any], str]]) -> None:
    from django.db import connection, connections

    threads = min(settings.EVALGATE_EMBEDDED_THREADS, len(jobs))
    # Another thread's connection sees committed rows only: inside a transaction that is still
    # open (a test's), or on SQLite (one writer at a time), the jobs run here, one by one.
    if threads <= 1 or connection.vendor != "postgresql" or connection.in_atomic_block:
        for args, job_id in jobs:
            _run_inline(func, args, job_id)
        return
    pending = iter(jobs)
    taking = threading.Lock()

    def work() -> None:
        while True:
            with taking:
                job = next(pending, None)
            if job is None:
                return
            _run_inline(func, job[0], job[1])

    def helper() -> None:
        try:
            work()
        finally:
            connections.close_all()  # this thread's connections only

    # Each helper runs in a copy of this thread's context: audit_app's "via" and the request
    # the jobs were caused by stay what they would be had the jobs run here.
    helpers = [
        threading.Thread(target=contextvars.copy_context().run, args=(helper,), name=f"evalgate-job-{n}")
        for n in range(1, threads)
    ]
    for thread in helpers:
        thread.start()
    work()  # this thread too, on its own connection
    for thread in helpers:
        thread.join()


def _run_inline(func: Callable[..., Any], args: Sequence[Any], job_id: str) -> None:
    try:
        func(*args)
    except Exception:
        # The job function has recorded its failure on its own row; an embedded-mode caller
        # (a web request, a management command) should not crash because a job did.
        logger.exception("inline job %s failed", job_id)


def _enqueue_rq(
    func: Callable[..., Any],
    args: Sequence[Any],
    *,
    job_id: str,
    depends_on: Sequence[str],
    description: str,
) -> None:
    """Hand the job to RQ once the transaction commits. When Redis cannot take it, the
    request that caused it still succeeds (its rows are committed): the job's row says it is
    queued, and the reaper enqueues it again once Redis is back."""

    def push() -> None:
        import django_rq
        from rq.job import Dependency

        queue = django_rq.get_queue(QUEUE_NAME, commit_mode="auto")
        dependency = Dependency(jobs=list(depends_on), allow_failure=True) if depends_on else None
        try:
            queue.enqueue_call(
                func,
                args=tuple(args),
                job_id=job_id,
                depends_on=dependency,
                description=description or job_id,
            )
        except Exception as exc:  # redis.ConnectionError, timeouts: Redis is unreachable
            logger.warning(
                "job %s not enqueued, Redis is unreachable (%s): the reaper will retry it", job_id, exc
            )

    transaction.on_commit(push)


def process_identity(pid: int | None = None) -> str:
    """host:pid:start-time of a process: which in-process (embedded) jobs die with it."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{_started(pid)}"


def _started(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc): a reused pid differs."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # Field 22, counted after the command name (which may hold spaces) closes with ")".
            return stat.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def process_alive(identity: str) -> bool:
    """Whether the process ``identity`` names still runs. Another host's process cannot be
    seen from here, so it counts as alive (embedded mode is one machine anyway)."""
    if not identity:
        return False
    host, _, rest = identity.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname():
        return True
    try:
        pid = int(pid_text)
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True  # it exists, under another user
    return _started(pid) == started


def get_redis_connection() -> Any:
    """The Redis connection of the default queue (for health checks and the reaper)."""
    import django_rq

    return django_rq.get_connection(QUEUE_NAME)


def cancel_jobs(job_ids: Sequence[str]) -> None:
    """Best effort: drop queued jobs so no worker picks them up (their rows say what happened).

    A job already running finishes its chunk; grade_chunk checks the run's status first, and
    a cancelled run's results no longer count."""
    if not uses_redis() or not job_ids:
        return
    from rq.exceptions import InvalidJobOperation, NoSuchJobError
    from rq.job import Job

    connection = get_redis_connection()
    for job_id in job_ids:
        # Already gone, finished or running: nothing to cancel.
        with contextlib.suppress(NoSuchJobError, InvalidJobOperation):
            Job.fetch(job_id, connection=connection).cancel()
