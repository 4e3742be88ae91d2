"""A release check as a deploy script makes it: POST the outputs, one rqworker grades them, the
verdict is decided. Time until decided, how long the verdict takes after the run's last chunk,
and the worker's peak memory at two sizes (issue 16: flat from 10,000 to 100,000 cases).

For each size, on a fresh scratch database: that many cases (the grading benchmark's: three
code graders each, about 2 in 3 outputs pass), a gate whose rules read every part of a run
(pass rates per grader, a no-regression rule against the baseline, latency p95, error rate,
pinned cases), one deploy token. One `manage.py rqworker` process is started and registered
before the clock starts. Two checks are requested through the API (`POST
/api/v1/gates/<slug>/checks/` with the outputs in the body, Django's test client in this
process): the first becomes the second's baseline, so the second's verdict reads both runs.

Printed per size: the POST's own time, the time from the POST until the check is decided,
the finaliser lag (the check's `decided_at` minus the last chunk's `finished_at`: the summary
and the verdict), and the worker's peak RSS, read from the kernel when the worker exits
(`wait4`: the largest of the worker and the work horses it forked, the finaliser among them;
the worker is started before this process builds the outputs, since a child's peak RSS counts
the pages of the parent it was forked from).

Baselines: the peak at the smallest size (target: the largest size's peak within 10% of it)
and 0.3 s for the finaliser lag. promptfoo's time on the same workload: versus_promptfoo.py.

    .venv/bin/python benchmarks/check_path.py [--cases 10000 100000]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _setup import (
    REDIS_URL,
    database_label,
    django_on_postgres,
    flush_redis,
    print_ratio,
    start_process,
    wait_until,
)
from grading_throughput import GRADERS, case_data

LAG_TARGET_S = 0.3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    print(f"release check through the API and one rqworker, sizes {', '.join(f'{n:,}' for n in args.cases)}")
    measured = {}
    for cases in args.cases:
        # Each size in its own child process: a scratch database and a worker of its own.
        output = subprocess.run(
            [sys.executable, __file__, "--one", str(cases)], capture_output=True, text=True, check=False
        )
        sys.stdout.write(output.stdout.split("RESULT ", 1)[0])
        if output.returncode != 0 or "RESULT " not in output.stdout:
            sys.stderr.write(output.stderr)
            raise SystemExit(f"the {cases:,}-case measurement failed (exit {output.returncode})")
        measured[cases] = json.loads(output.stdout.split("RESULT ", 1)[1])
    small, large = min(measured), max(measured)
    print(
        f"  peak worker RSS: {measured[small]['peak_mib']:.0f} MiB at {small:,} cases, "
        f"{measured[large]['peak_mib']:.0f} MiB at {large:,}"
    )
    if large != small:
        print_ratio(
            f"worker peak RSS {large:,} / {small:,} cases",
            measured[large]["peak_mib"] / measured[small]["peak_mib"],
            "<= 1.1",
        )
    for cases, m in sorted(measured.items()):
        print_ratio(f"finaliser lag at {cases:,} cases / {LAG_TARGET_S} s", m["lag_s"] / LAG_TARGET_S, "<= 1")


def stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def one(cases: int) -> None:
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1"  # the test client's requests name this host
    with django_on_postgres(REDIS_URL):
        flush_redis(REDIS_URL)
        try:
            measure(cases)
        finally:
            flush_redis(REDIS_URL)


def setup(cases: int) -> tuple[Any, str, list[dict[str, Any]]]:
    """Cases, graders, a gate that reads every part of a run, and a deploy token."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from datasets_app import services as datasets
    from datasets_app.models import Case
    from evalproject.bulk import copy_insert, fields_of, refresh_statistics
    from gates_app.choices import Scope
    from gates_app.services import save_gate
    from gates_app.tokens import create_token
    from grading_app.services import save_grader

    owner = get_user_model().objects.create_user("owner")
    failure_class = datasets.save_failure_class(slug="refunds", name="Refunds")
    dataset = datasets.save_dataset(slug="bench", name="Bench", owner=owner)
    data = [case_data(i) for i in range(cases)]
    rows = (
        Case(
            dataset=dataset,
            key=row["key"],
            tier="trusted" if i % 4 else "monitoring",
            status="active",
            failure_class=failure_class,
            input=row["input"],
            expected=row["expected"],
            pinned=i % 3000 == 1,  # cases whose outputs pass: the first check passes
        )
        for i, row in enumerate(data)
    )
    if connection.vendor == "postgresql":
        copy_insert(Case, [fields_of(case) for case in rows])
    else:
        Case.objects.bulk_create(rows, batch_size=1000)
    refresh_statistics(Case, cases)  # as import_cases does after a large import
    graders = {slug: save_grader(slug=slug, kind=kind) for slug, kind in GRADERS}
    rules = [
        *(
            {
                "name": f"{slug} accuracy",
                "metric": "pass_rate",
                "grader": grader,
                "scope": {"tier": "trusted"},
                "threshold": 0.5,
                "severity": "block",
            }
            for slug, grader in graders.items()
        ),
        {
            "name": "no regression",
            "metric": "pass_rate",
            "grader": graders["answer-exact"],
            "mode": "no_regression",
            "margin": 0.02,
            "severity": "block",
        },
        {"name": "latency budget", "metric": "latency_p95_ms", "threshold": 2000, "severity": "warn"},
        {"name": "errors", "metric": "error_rate", "threshold": 0.01, "severity": "block"},
        {"name": "incidents", "metric": "pinned_pass", "severity": "warn"},
    ]
    gate = save_gate(slug="release", name="Release", owner=owner, dataset=dataset, rules=rules)
    _, secret = create_token(
        name="ci", gates=[gate], scopes=[Scope.CHECKS_READ, Scope.CHECKS_WRITE], actor=owner
    )
    outputs = [{"case": row["key"], "output": row["output"], "metrics": row["metrics"]} for row in data]
    return gate, secret, outputs


def start_worker(log_dir: Path) -> subprocess.Popen:
    from rq import Worker

    from evalproject.queues import get_redis_connection

    worker = start_process(
        [sys.executable, "manage.py", "rqworker", "default", "--name", f"bench-check-{os.getpid()}"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        log=log_dir / "worker.log",
    )
    connection = get_redis_connection()

    def registered() -> bool:
        if worker.poll() is not None:
            raise SystemExit(f"the rqworker exited at start:\n{(log_dir / 'worker.log').read_text()}")
        return len(Worker.all(connection=connection)) >= 1

    wait_until(registered, timeout=60, what="the rqworker to register")
    return worker


def peak_rss_mib(worker: subprocess.Popen) -> float:
    """Stop the worker and read its peak RSS from the kernel: wait4's ru_maxrss covers the
    process and the children it waited for (the work horses), in KiB on Linux."""
    worker.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(worker.pid, 0)
    worker.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024


def request_and_wait(client: Any, gate: Any, secret: str, outputs: list, candidate: str) -> dict[str, float]:
    from gates_app.models import Check
    from grading_app.models import RunChunk

    body = json.dumps({"candidate": candidate, "outputs": outputs})
    started = time.perf_counter()
    response = client.post(
        f"/api/v1/gates/{gate.slug}/checks/",
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    posted = time.perf_counter() - started
    if response.status_code != 202:
        raise SystemExit(f"POST answered {response.status_code}: {response.content[:500]!r}")
    check_id = response.json()["id"]

    def decided() -> bool:
        return Check.objects.filter(pk=check_id, decided_at__isnull=False).exists()

    wait_until(decided, timeout=900, what=f"check {check_id} to be decided", interval=0.02)
    until_decided = time.perf_counter() - started
    check = Check.objects.select_related("run").get(pk=check_id)
    last_chunk = max(RunChunk.objects.filter(run=check.run).values_list("finished_at", flat=True))
    return {
        "post_s": posted,
        "decided_s": until_decided,
        "lag_s": (check.decided_at - last_chunk).total_seconds(),
        # finish_run stamps the run after its summary; the verdict comes after that.
        "summary_s": (check.run.finished_at - last_chunk).total_seconds(),
        "verdict": check.verdict,
    }


def measure(cases: int) -> None:
    from django.test import Client

    log_dir = Path(os.environ["EVALGATE_VAR_DIR"])
    # The worker first: a child's peak RSS counts the parent's pages it was forked with, and
    # this process grows with the outputs it is about to build.
    worker = start_worker(log_dir)
    gate, secret, outputs = setup(cases)
    client = Client(SERVER_NAME="127.0.0.1")
    try:
        first = request_and_wait(client, gate, secret, outputs, "v1")
        # The second candidate differs on every 7th case, so the paired comparison has work to do.
        changed = [dict(o, output="Yes") if i % 7 == 0 else o for i, o in enumerate(outputs)]
        second = request_and_wait(client, gate, secret, changed, "v2")
    finally:
        peak = peak_rss_mib(worker) if worker.poll() is None else float("nan")
    print(f"  {cases:,} cases on {database_label()}:")
    for label, m in (("first check (no baseline)", first), ("second check (with baseline)", second)):
        print(
            f"    {label}: POST {m['post_s']:.2f} s, decided {m['decided_s']:.2f} s after the POST "
            f"({cases / m['decided_s']:,.0f} cases/s), verdict {m['verdict']} "
            f"{m['lag_s']:.3f} s after the last chunk (run summarised after {m['summary_s']:.3f} s)"
        )
    print(f"    worker peak RSS {peak:.0f} MiB")
    print(
        "RESULT " + json.dumps({"peak_mib": peak, "lag_s": second["lag_s"], "decided_s": second["decided_s"]})
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        one(int(sys.argv[2]))
    else:
        main()
