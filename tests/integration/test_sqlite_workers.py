"""SQLite shared by separate processes: two rqworkers and the demo, without "database is locked"."""

import os
import subprocess
import sys

from tests.integration.conftest import REPO, start_worker, stop_worker, wait_for_workers, worker_log


def test_demo_through_two_workers_on_one_sqlite_file(redis_url, tmp_path):
    database_url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "DEBUG": "true"}
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=REPO, env=env, check=True, timeout=300)
    workers = [start_worker(database_url, redis_url, name=f"sqlite-{n}", log_dir=tmp_path) for n in (1, 2)]
    try:
        wait_for_workers(redis_url, workers, tmp_path)
        demo = subprocess.run(
            [*manage, "demo", "--timeout", "180"],
            cwd=REPO,
            env={**env, "EVALGATE_CHUNK_SIZE": "5", "EVALGATE_CODE_CHUNK_SIZE": "5"},
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        for worker in workers:
            stop_worker(worker)
    logs = worker_log(tmp_path, "sqlite-1") + worker_log(tmp_path, "sqlite-2")
    assert demo.returncode == 0, demo.stdout + demo.stderr + logs
    assert "Jobs run RQ workers" in demo.stdout
    assert "verdict: PASS" in demo.stdout and "verdict: FAIL" in demo.stdout
    assert "database is locked" not in logs
    # Both workers took chunk jobs (8 chunks per candidate), so the processes really overlapped.
    assert "run-1-chunk" in logs and "run-2-chunk" in logs
    assert "Job OK" in worker_log(tmp_path, "sqlite-1") and "Job OK" in worker_log(tmp_path, "sqlite-2")
