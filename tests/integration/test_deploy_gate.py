"""End to end on real services: a deploy token posts outputs over HTTP, an rqworker process
grades them on PostgreSQL, and the `evalgate` CLI exits 0 for a good candidate, 1 for a bad one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import redis
from rq.job import Job, JobStatus

from gates_app.choices import CheckStatus, Verdict
from gates_app.models import Check
from grading_app.choices import ChunkStatus, RunStatus
from grading_app.models import CaseResult, RunChunk
from tests.factories import make_scenario, make_token, make_user, outputs_for
from tests.integration.conftest import worker_log

EVALGATE = str(Path(sys.executable).parent / "evalgate")  # the installed console script


def run_cli(live_server, secret: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EVALGATE_URL": live_server.url, "EVALGATE_TOKEN": secret}
    return subprocess.run([EVALGATE, *args], env=env, capture_output=True, text=True, timeout=180)


def write_jsonl(path: Path, items: list[dict]) -> str:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return str(path)


def test_cli_gates_good_and_bad_candidates_through_a_real_worker(
    live_server, rq_worker, redis_url, settings, tmp_path
):
    settings.EVALGATE_CHUNK_SIZE = 3  # several chunk jobs plus a dependent finaliser
    settings.EVALGATE_CODE_CHUNK_SIZE = 3
    s = make_scenario(n_trusted=6, n_monitoring=4)
    secret = make_token([s["gate"]])
    good = write_jsonl(tmp_path / "good.jsonl", outputs_for(s["cases"]))
    bad = write_jsonl(tmp_path / "bad.jsonl", outputs_for(s["cases"], answer="Yes"))

    ok = run_cli(
        live_server,
        secret,
        "check",
        s["gate"].slug,
        "--candidate",
        "good-sha",
        "--outputs",
        good,
        "--wait",
        "--timeout",
        "120",
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr + worker_log(tmp_path, "worker-1")
    assert "verdict: PASS" in ok.stdout
    assert "trusted accuracy" in ok.stdout

    failed = run_cli(
        live_server,
        secret,
        "check",
        s["gate"].slug,
        "--candidate",
        "bad-sha",
        "--outputs",
        bad,
        "--wait",
        "--timeout",
        "120",
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "verdict: FAIL" in failed.stdout

    checks = {c.candidate: c for c in Check.objects.select_related("run")}
    assert checks["good-sha"].verdict == Verdict.PASS and checks["bad-sha"].verdict == Verdict.FAIL
    connection = redis.Redis.from_url(redis_url)
    for check in checks.values():
        assert check.status == CheckStatus.DONE
        assert check.run.status == RunStatus.SUCCEEDED
        assert CaseResult.objects.filter(run=check.run).count() == 10
        chunks = list(RunChunk.objects.filter(run=check.run))
        assert len(chunks) == 4
        for chunk in chunks:
            assert chunk.status == ChunkStatus.DONE and chunk.attempts == 1
            # The worker, not this process, executed the job: RQ recorded it as finished.
            assert Job.fetch(chunk.job_id, connection=connection).get_status() == JobStatus.FINISHED
        # The chunk that settled last finalised the run inside its own job, and says so.
        assert check.run.finaliser_job_id in {chunk.job_id for chunk in chunks}
        assert not Job.exists(f"run-{check.run_id}-finalise", connection=connection)


def test_cli_exits_3_until_an_approver_acknowledges_a_warn_then_0(
    live_server, rq_worker, redis_url, tmp_path
):
    s = make_scenario(n_trusted=4, n_monitoring=0)
    approver = make_user("carol", roles=("Release approver",))
    s["gate"].approvers.add(approver)
    secret = make_token([s["gate"]])
    personal = make_token([], user=approver)
    slow = write_jsonl(tmp_path / "slow.jsonl", outputs_for(s["cases"], latency_ms=4000))
    partial = write_jsonl(tmp_path / "partial.jsonl", outputs_for(s["cases"][1:]))

    warned = run_cli(
        live_server,
        secret,
        "check",
        s["gate"].slug,
        "--candidate",
        "slow",
        "--outputs",
        slow,
        "--wait",
        "--timeout",
        "120",
        "--json",
    )
    assert warned.returncode == 3, warned.stdout + warned.stderr
    check = json.loads(warned.stdout)
    assert (check["verdict"], check["release_allowed"]) == ("warn", False)

    approved = run_cli(
        live_server, personal, "approve", str(check["id"]), "--reason", "cold cache after deploy"
    )
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert "release allowed: yes" in approved.stdout

    inconclusive = run_cli(
        live_server,
        secret,
        "check",
        s["gate"].slug,
        "--candidate",
        "partial",
        "--outputs",
        partial,
        "--wait",
        "--timeout",
        "120",
    )
    assert inconclusive.returncode == 3, inconclusive.stdout + inconclusive.stderr
    assert "verdict: INCONCLUSIVE" in inconclusive.stdout


def test_cli_reports_connection_and_usage_errors_with_exit_2(live_server, tmp_path):
    refused = subprocess.run(
        [EVALGATE, "check", "g", "--candidate", "x"],
        env={**os.environ, "EVALGATE_URL": "http://127.0.0.1:9", "EVALGATE_TOKEN": "egt_x_y"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "cannot reach" in refused.stderr
    usage = subprocess.run([EVALGATE, "check"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2
    unauthorised = run_cli(live_server, "egt_bad_secret", "check", "g", "--candidate", "x")
    assert unauthorised.returncode == 2
    assert "HTTP 401" in unauthorised.stderr
