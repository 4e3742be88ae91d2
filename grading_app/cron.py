"""Periodic jobs of the run pipeline (scheduled by gates_app.cron for `manage.py rqcron`).

One scheduler process per deployment runs the reaper every minute on the default queue,
so lost chunks are found in minutes without anyone watching.
"""


def reap_runs() -> str:
    """Cron job: one reaper pass (see grading_app.reaper)."""
    from grading_app.reaper import reap

    return str(reap())
