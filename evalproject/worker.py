"""The RQ worker class Evalgate's workers run (settings.RQ["WORKER_CLASS"]).

RQ's own forking worker, with four changes:

- its heartbeat interval comes from the settings, because the reaper judges a started job
  dead when its worker's heartbeat is older than EVALGATE_WORKER_STALE_S;
- it imports every app's ``jobs`` module before it forks, so each job's work horse inherits
  them instead of importing them;
- it freezes the garbage collector's view of what it imported before each fork (gc.freeze);
- it outlives a Redis outage. RQ retries while idle, but a worker that loses Redis while it
  finishes a job logs "unhandled exception, quitting" and exits, so the queue silently
  stops. Here the worker waits for Redis with backoff and starts working again; the job it
  was finishing is judged by its database row (done, or re-enqueued by the reaper).
"""

import gc
import logging
import time
from contextlib import suppress
from importlib import import_module
from typing import Any

import redis
from django.conf import settings
from django.utils.module_loading import autodiscover_modules
from rq import Worker as RQWorker
from rq.exceptions import StopRequested

logger = logging.getLogger("rq.worker")
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def preload(name: str) -> None:
    """Import ``module`` or, for ``module:function``, import it and call the function."""
    module, _, function = name.partition(":")
    imported = import_module(module)
    if function:
        getattr(imported, function)()


class Worker(RQWorker):
    max_connection_wait_time = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("job_monitoring_interval", settings.EVALGATE_WORKER_HEARTBEAT_S)
        super().__init__(*args, **kwargs)
        self._redis_lost: Exception | None = None
        # Every job runs in a fresh fork of this process. Imported here once, the job modules
        # (grading_app.jobs pulls in openai: ~0.7 s) are inherited; otherwise each fork
        # imports them again, which cost every chunk 0.5-1 s in benchmarks/judge_throughput.py.
        autodiscover_modules("jobs")
        # What the jobs import or load only when they need it (openai, for judges and chat
        # targets; the refusal model, read on first use: 0.16 s in every work horse otherwise).
        for name in settings.EVALGATE_WORKER_PRELOAD:
            preload(name)

    def work(self, *args: Any, **kwargs: Any) -> bool:
        worked = False
        while True:
            self._redis_lost = None
            try:
                worked = super().work(*args, **kwargs) or worked
            except REDIS_DOWN as exc:  # raised by the teardown of a loop that lost Redis
                self._redis_lost = self._redis_lost or exc
            if self._redis_lost is None or self._stop_requested:
                return worked
            self._wait_for_redis()

    def _wait_for_redis(self) -> None:
        delay = 1.0
        logger.warning("Worker %s: lost Redis (%s); waiting for it to come back", self.name, self._redis_lost)
        while True:
            time.sleep(delay)
            try:
                self.connection.ping()
                break
            except REDIS_DOWN:
                delay = min(delay * 2, self.max_connection_wait_time)
        # The old registration may have outlived the outage: close it so the new birth is accepted.
        with suppress(Exception):
            self.register_death()
        logger.warning("Worker %s: Redis is back; working again", self.name)

    def _guard(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except REDIS_DOWN as exc:
            self._redis_lost = exc
            raise StopRequested from exc  # ends RQ's loop cleanly; work() then waits for Redis

    def execute_job(self, job: Any, queue: Any) -> Any:
        # Everything alive now (Django, the apps, openai: ~1 million objects) goes to the
        # permanent generation before the fork: the work horse's collections skip it instead of
        # walking it (a full collection was ~70 ms, about every fourth judge chunk) and touching
        # every page it shares with this process.
        gc.freeze()
        return self._guard(super().execute_job, job, queue)

    def check_for_suspension(self, burst: bool) -> Any:
        return self._guard(super().check_for_suspension, burst)

    def run_maintenance_tasks(self) -> Any:
        return self._guard(super().run_maintenance_tasks)

    def heartbeat(self, *args: Any, **kwargs: Any) -> Any:
        # While a work horse runs, the parent beats; a failed beat must not abandon the horse.
        try:
            return super().heartbeat(*args, **kwargs)
        except REDIS_DOWN as exc:
            logger.warning("Worker %s: heartbeat failed, Redis is unreachable (%s)", self.name, exc)
            return None
