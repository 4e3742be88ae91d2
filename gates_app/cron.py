"""Every periodic job of a deployment, for one scheduler process: ``manage.py rqcron gates_app.cron``.

Registered here, in one place, because rq clears its registry before it imports this module:
a registration left in an app's module would be lost if that module had been imported first.
"""

from rq import cron

from grading_app.cron import reap_runs
from monitoring_app.cron import (
    assemble_quiet_traces,
    evaluate_monitors,
    purge_expired_traces,
    retry_stale_samples,
)

cron.register(reap_runs, "default", interval=60, name="reap_runs")
cron.register(assemble_quiet_traces, "default", interval=60, name="assemble_quiet_traces")
cron.register(purge_expired_traces, "default", interval=3600, name="purge_expired_traces")
cron.register(retry_stale_samples, "default", interval=60, name="retry_stale_samples")
cron.register(evaluate_monitors, "default", interval=60, name="evaluate_monitors")
