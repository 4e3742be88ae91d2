"""enqueue(): the one seam between Evalgate's code and its job queue.

With ``REDIS_URL`` set, jobs go to django-rq's ``default`` queue once the surrounding
transaction commits (django-rq's ``on_db_commit`` mode). Without it (the embedded default)
the same job function runs in this process after commit: RQ's own synchronous mode still
needs a Redis server, so it cannot serve here. Either way job functions take primary keys
and keep their state on database rows, so callers never ask the queue how a job went.
"""

import contextlib
import logging
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
    import django_rq
    from rq.job import Dependency

    queue = django_rq.get_queue(QUEUE_NAME)
    dependency = Dependency(jobs=list(depends_on), allow_failure=True) if depends_on else None
    queue.enqueue_call(
        func,
        args=tuple(args),
        job_id=job_id,
        depends_on=dependency,
        description=description or job_id,
    )


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
