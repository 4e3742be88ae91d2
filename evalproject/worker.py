"""The RQ worker class Evalgate's workers run (settings.RQ["WORKER_CLASS"]).

RQ's own forking worker, with its heartbeat interval taken from the settings, because
the reaper judges a started job dead when its worker's heartbeat is older than
EVALGATE_WORKER_STALE_S (three heartbeats by default). It imports every app's ``jobs``
module before it forks, so each job's work horse inherits them instead of importing them.
"""

from typing import Any

from django.conf import settings
from django.utils.module_loading import autodiscover_modules
from rq import Worker as RQWorker


class Worker(RQWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("job_monitoring_interval", settings.EVALGATE_WORKER_HEARTBEAT_S)
        super().__init__(*args, **kwargs)
        # Every job runs in a fresh fork of this process. Imported here once, the job modules
        # (grading_app.jobs pulls in openai: ~0.7 s) are inherited; otherwise each fork
        # imports them again, which cost every chunk 0.5-1 s in benchmarks/judge_throughput.py.
        autodiscover_modules("jobs")
