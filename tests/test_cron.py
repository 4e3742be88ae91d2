"""`manage.py rqcron gates_app.cron` schedules every periodic job of a deployment."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = """
import django, redis
django.setup()
import grading_app.cron, monitoring_app.cron  # imported first, as a running process may have
from rq.cron import CronScheduler
scheduler = CronScheduler(connection=redis.Redis())
scheduler.load_config_from_file("gates_app.cron")
print(sorted((job.func.__module__ + "." + job.func.__name__, job.interval) for job in scheduler.get_jobs()))
"""


def test_the_cron_config_registers_every_periodic_job():
    # A separate process: rq's registry is global, and loading clears it.
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO,
        env={"DJANGO_SETTINGS_MODULE": "evalproject.settings", "DEBUG": "true", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(
        [
            ("grading_app.cron.reap_runs", 60),
            ("monitoring_app.cron.assemble_quiet_traces", 60),
            ("monitoring_app.cron.evaluate_monitors", 60),
            ("monitoring_app.cron.purge_expired_traces", 3600),
            ("monitoring_app.cron.retry_stale_samples", 60),
        ]
    )
