"""Periodic jobs for `manage.py rqcron grading_app.cron` (django-rq's cron scheduler).

One scheduler process per deployment runs the reaper every minute on the default queue,
so lost chunks are found in minutes without anyone watching.
"""

from rq import cron


def reap_runs() -> str:
    """Cron job: one reaper pass (see grading_app.reaper)."""
    from grading_app.reaper import reap

    return str(reap())


cron.register(reap_runs, "default", interval=60, name="reap_runs")
