"""Issue 12: in embedded mode (no Redis) a run whose process was killed is finished later, by
`manage.py reap_runs` or by the next web process's first request."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import REPO

CASES = 400  # x 3 ms of slow grading: over a second of work to be killed in the middle of


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'embedded.sqlite3'}",
        "DEBUG": "true",
        "EVALGATE_GRADER_MODULES": "tests.integration.slow_grader",
        "EVALGATE_CHUNK_SIZE": "50",
        "EVALGATE_CODE_CHUNK_SIZE": "50",
        **extra,
    }
    env.pop("REDIS_URL", None)
    return env


def _manage(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _runs(tmp_path: Path) -> list[tuple[int, str, int]]:
    with sqlite3.connect(tmp_path / "embedded.sqlite3") as db:
        return db.execute("SELECT id, status, done_cases FROM grading_app_run ORDER BY id").fetchall()


def _prepare(tmp_path: Path, env: dict[str, str]) -> Path:
    assert _manage(env, "migrate", "-v0").returncode == 0
    owner = (
        "from django.contrib.auth.models import Group, User\n"
        "User.objects.create(username='bob').groups.add(Group.objects.get(name='Dataset owner'))"
    )
    created = _manage(env, "shell", "-c", owner)
    assert created.returncode == 0, created.stderr
    cases = [
        {
            "key": f"c{i:03d}",
            "tier": "monitoring",
            "failure_class": "factual",
            "input": {"messages": [{"role": "user", "content": f"q{i}"}]},
            "expected": {"answer": "No"},
        }
        for i in range(CASES)
    ]
    config = {
        "failure_classes": [{"slug": "factual", "name": "Factual"}],
        "datasets": [{"slug": "support", "name": "Support", "cases": cases}],
        "graders": [{"slug": "slow", "kind": "slow_exact_match", "dimension": "correctness"}],
    }
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
    applied = _manage(env, "apply_config", str(tmp_path / "evals.yaml"), "--as", "bob")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text("\n".join(json.dumps({"case": c["key"], "output": "No"}) for c in cases))
    return outputs


def _kill_a_run_midway(tmp_path: Path, env: dict[str, str], outputs: Path) -> int:
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_eval", "support", "--outputs", str(outputs), "--candidate", "v1"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline and process.poll() is None, (
            "run_eval finished before it could be killed"
        )
        runs = _runs(tmp_path) if (tmp_path / "embedded.sqlite3").exists() else []
        if runs and 0 < runs[0][2] < CASES:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    ((run_id, status, done),) = _runs(tmp_path)
    assert status in ("queued", "running") and done < CASES
    return run_id


def test_reap_runs_finishes_a_run_whose_process_was_killed(tmp_path):
    env = _env(tmp_path)
    outputs = _prepare(tmp_path, env)
    _kill_a_run_midway(tmp_path, env, outputs)

    reaped = _manage(env, "reap_runs")

    assert reaped.returncode == 0, reaped.stderr
    assert "re-enqueued" in reaped.stdout
    ((_, status, done),) = _runs(tmp_path)
    assert (status, done) == ("succeeded", CASES)
    with sqlite3.connect(tmp_path / "embedded.sqlite3") as db:
        (results,) = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT case_id) FROM grading_app_caseresult"
        ).fetchall()
    assert results == (CASES, CASES)  # nothing lost, nothing twice


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_next_web_process_finishes_it_at_its_first_request(tmp_path):
    env = _env(tmp_path, EVALGATE_RECOVER_ON_START="true")
    outputs = _prepare(tmp_path, env)
    _kill_a_run_midway(tmp_path, env, outputs)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    assert response.status == 200
                break
            except OSError:
                assert time.monotonic() < deadline, "runserver did not start"
                time.sleep(0.2)
        deadline = time.monotonic() + 120
        while _runs(tmp_path)[0][1] != "succeeded":
            assert time.monotonic() < deadline, _runs(tmp_path)
            time.sleep(0.3)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert _runs(tmp_path)[0][2] == CASES


@pytest.fixture(autouse=True)
def _no_database_needed():
    """These tests run their own processes on a SQLite file; the suite's database is not used."""


def test_run_eval_as_its_own_process_prints_its_summary_and_commits_every_result(tmp_path):
    """manage.py ends run_eval without the interpreter's teardown (evalproject.fastexit): the
    whole summary still reaches the pipe and every result is in the database."""
    env = _env(tmp_path)
    outputs = _prepare(tmp_path, env)

    finished = _manage(env, "run_eval", "support", "--outputs", str(outputs), "--candidate", "v1")

    assert finished.returncode == 0, finished.stderr
    assert "slow" in finished.stdout and finished.stdout.endswith("\n")
    ((_, status, done),) = _runs(tmp_path)
    assert (status, done) == ("succeeded", CASES)
    with sqlite3.connect(tmp_path / "embedded.sqlite3") as db:
        (results,) = db.execute("SELECT COUNT(*) FROM grading_app_caseresult").fetchone()
    assert results == CASES
