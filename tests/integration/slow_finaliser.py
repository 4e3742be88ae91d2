"""A worker whose finalisers take their time, so a test can kill it inside one.

Started as `manage.py rqworker default --worker-class tests.integration.slow_finaliser.Worker`;
it signals "inside the finaliser" by setting a Redis key, then sleeps in the finaliser's
transaction (a run_finished receiver after the verdict's), so a kill there loses the verdict.
"""

import os
import time
from typing import Any

from django.conf import settings

from evalproject.worker import Worker as EvalgateWorker
from grading_app.models import Run
from grading_app.signals import run_finished

MARKER = "evalgate-test:inside-finaliser"


def linger(sender: Any, run: Run, **kwargs: Any) -> None:
    import redis

    redis.Redis.from_url(settings.REDIS_URL).set(MARKER, str(run.pk))
    time.sleep(float(os.environ.get("EVALGATE_TEST_FINALISER_SLEEP_S", "60")))


class Worker(EvalgateWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only in this worker's process: importing the module (a test does) connects nothing.
        run_finished.connect(linger, sender=Run, dispatch_uid="tests.slow_finaliser")
