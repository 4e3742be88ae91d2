"""Issue 12: large submissions go through. The CLI gzips its body, and pages the outputs when
the server answers 413, to a check whose run starts once the last page arrives."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from datasets_app.choices import CaseStatus, Tier
from datasets_app.models import Case
from gates_app.models import Check, CheckUploadPage
from grading_app.models import CaseResult
from tests.factories import make_scenario, make_token
from tests.integration.conftest import worker_log

EVALGATE = str(Path(sys.executable).parent / "evalgate")


def big_dataset(n: int) -> dict:
    s = make_scenario(n_trusted=1, n_monitoring=0)
    template = s["cases"][0]
    Case.objects.bulk_create(
        Case(
            dataset=s["dataset"],
            key=f"case-{i:05d}",
            tier=Tier.TRUSTED,
            status=CaseStatus.ACTIVE,
            failure_class=template.failure_class,
            input=template.input,
            expected={"answer": "No"},
        )
        for i in range(n - 1)
    )
    return s


def outputs_with_traces(keys: list[str], padding: int) -> list[dict]:
    """Each output with a short agent trace: a retrieval, a tool call and a message."""
    return [
        {
            "case": key,
            "output": "No",
            "trace": [
                {
                    "type": "retrieval",
                    "documents": [{"id": f"doc-{n % 97}", "text": f"policy {key} " + "x" * padding}],
                },
                {
                    "type": "tool_call",
                    "name": "lookup_order",
                    "arguments": {"order": key},
                    "result": {"ok": True},
                },
                {"type": "message", "role": "assistant", "content": "No, refunds close after 30 days."},
            ],
            "metrics": {"latency_ms": 700 + n % 50, "input_tokens": 900, "output_tokens": 40},
        }
        for n, key in enumerate(keys)
    ]


def run_cli(live_server, secret: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EVALGATE_URL": live_server.url, "EVALGATE_TOKEN": secret}
    return subprocess.run([EVALGATE, *args], env=env, capture_output=True, text=True, timeout=600)


def write_outputs(path: Path, outputs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in outputs))
    return path


def test_10000_outputs_with_traces_20_mb_are_decided_through_the_cli(
    live_server, rq_worker, settings, tmp_path
):
    s = big_dataset(10_000)
    keys = list(Case.objects.filter(dataset=s["dataset"]).values_list("key", flat=True))
    path = write_outputs(tmp_path / "outputs.jsonl", outputs_with_traces(keys, padding=1_700))
    assert path.stat().st_size > 20_000_000
    secret = make_token([s["gate"]])

    started = time.monotonic()
    result = run_cli(
        live_server,
        secret,
        "check",
        s["gate"].slug,
        "--candidate",
        "big",
        "--outputs",
        str(path),
        "--wait",
        "--timeout",
        "540",
    )

    assert result.returncode == 0, result.stdout + result.stderr + worker_log(tmp_path, "worker-1")
    assert "uploading them in" not in result.stderr  # one gzip request: 20 MB is within the limit
    check = Check.objects.get(candidate="big")
    assert (check.verdict, check.pages_expected) == ("pass", 0)
    assert CaseResult.objects.filter(run=check.run).count() == 10_000
    assert time.monotonic() - started < 540


def test_outputs_over_the_limit_are_uploaded_in_pages_and_the_run_starts_with_the_last(
    live_server, rq_worker, settings, tmp_path
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000_000  # the live server's limit: 1 MB
    s = big_dataset(2_000)
    keys = list(Case.objects.filter(dataset=s["dataset"]).values_list("key", flat=True))
    path = write_outputs(tmp_path / "outputs.jsonl", outputs_with_traces(keys, padding=2_000))
    assert path.stat().st_size > 4_000_000
    secret = make_token([s["gate"]])

    result = run_cli(
        live_server,
        secret,
        "check",
        s["gate"].slug,
        "--candidate",
        "paged",
        "--outputs",
        str(path),
        "--wait",
        "--timeout",
        "300",
    )

    assert result.returncode == 0, result.stdout + result.stderr + worker_log(tmp_path, "worker-1")
    assert "outputs too large for one request: uploading them in" in result.stderr
    check = Check.objects.get(candidate="paged")
    pages = CheckUploadPage.objects.filter(gate_check=check)
    assert check.pages_expected == pages.count() >= 5
    assert sum(pages.values_list("outputs", flat=True)) == 2_000
    assert check.verdict == "pass"
    assert CaseResult.objects.filter(run=check.run).count() == 2_000
