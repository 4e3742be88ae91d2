"""The same 10,000-case workload given to Evalgate and to promptfoo, whole processes, one run.

Workload: the grading benchmark's cases (grading_throughput.case_data): each case has a
reference answer, two required substrings and a pattern, and a candidate output, about 2 in 3
passing each check; three code checks per case, every result stored.

- Evalgate, ``manage.py run_eval bench --outputs outputs.jsonl`` as a user runs it: a new
  process (Django start-up included) on the scratch PostgreSQL database, jobs in-process
  (REDIS_URL unset), until it prints the summary.
- Evalgate, through the API with one rqworker: ``POST /api/v1/gates/release/checks/`` with the
  outputs in the body (Django's test client in this process), one ``manage.py rqworker``
  started and registered first, until the check is decided (check_path.py's measurement).
- promptfoo 0.121.20, ``promptfoo eval`` as a user runs it (a new process) on a config whose
  prompt is ``{{output}}`` with the ``echo`` provider, so the output it grades is the
  candidate's; per test ``equals`` (the reference), ``icontains-all`` (our contains grader
  ignores case), ``regex`` (both search); results stored in its own SQLite database under a
  scratch ``PROMPTFOO_CONFIG_DIR``. Telemetry, update checks and sharing are switched off.

promptfoo is not installed by this script: it runs ``npx --no-install promptfoo@0.121.20``
and skips (saying so) when that is not available. Targets (issue 16): run_eval at most 1/10 of
promptfoo's time, the API path at most 1/7.

    .venv/bin/python benchmarks/versus_promptfoo.py [--cases 10000]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from _setup import REDIS_URL, REPO, database_label, django_on_postgres, flush_redis, print_ratio
from check_path import request_and_wait, setup, start_worker, stop_worker
from grading_throughput import case_data

PROMPTFOO = ("npx", "--no-install", "promptfoo@0.121.20")
QUIET_PROMPTFOO = {
    "PROMPTFOO_DISABLE_TELEMETRY": "1",
    "PROMPTFOO_DISABLE_UPDATE": "1",
    "PROMPTFOO_DISABLE_SHARING": "1",
    "PROMPTFOO_DISABLE_REMOTE_GENERATION": "1",
}


def promptfoo_version() -> str | None:
    try:
        found = subprocess.run([*PROMPTFOO, "--version"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = found.stdout.strip().splitlines()
    return lines[-1] if found.returncode == 0 and lines else None


def write_promptfoo_suite(directory: Path, cases: int) -> Path:
    """promptfooconfig.json and tests.jsonl for the workload; returns the config's path."""
    tests = []
    for i in range(cases):
        data = case_data(i)
        expected = data["expected"]
        tests.append(
            {
                "description": data["key"],
                "vars": {"output": data["output"]},
                "assert": [
                    {"type": "equals", "value": expected["answer"]},
                    {"type": "icontains-all", "value": expected["contains"]},
                    {"type": "regex", "value": expected["pattern"]},
                ],
            }
        )
    (directory / "tests.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tests))
    config = directory / "promptfooconfig.json"
    config.write_text(
        json.dumps(
            {
                "description": "Evalgate benchmark workload",
                "prompts": ["{{output}}"],
                "providers": ["echo"],
                "tests": "file://tests.jsonl",
            }
        )
    )
    return config


def time_promptfoo(config: Path) -> float:
    env = {**os.environ, **QUIET_PROMPTFOO, "PROMPTFOO_CONFIG_DIR": str(config.parent / "promptfoo-home")}
    started = time.perf_counter()
    done = subprocess.run(
        [*PROMPTFOO, "eval", "-c", str(config), "--no-progress-bar", "--no-table", "--no-cache"],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 100):  # 100: some tests failed, as a third of them must
        raise SystemExit(
            f"promptfoo eval exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    plain = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # without its colours
    counts = re.findall(r"(\d[\d,]*) (passed|failed) \(", plain)
    if counts:
        print(f"    promptfoo: {', '.join(f'{n} {what}' for n, what in counts[-2:])}")
    else:  # say what it printed instead: a run that did not finish its work must not pass for one
        tail = [line for line in plain.splitlines() if line.strip() and not line.startswith("    at ")][-6:]
        print("    promptfoo printed no summary; its last lines:\n" + "\n".join(f"      {t}" for t in tail))
    return elapsed


def time_run_eval(outputs: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # jobs in-process
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", "run_eval", "bench", "--outputs", str(outputs), "--candidate", "cli"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"run_eval exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    print(f"    run_eval: {done.stdout.strip().splitlines()[0]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=10_000)
    args = parser.parse_args()
    version = promptfoo_version()
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1"  # the test client's requests name this host
    with django_on_postgres(REDIS_URL):
        flush_redis(REDIS_URL)
        directory = Path(os.environ["EVALGATE_VAR_DIR"])
        worker = start_worker(directory)
        try:
            gate, secret, outputs = setup(args.cases)
            outputs_file = directory / "outputs.jsonl"
            outputs_file.write_text("".join(json.dumps(o) + "\n" for o in outputs))
            print(f"{args.cases:,} cases x 3 code checks, every result stored, on {database_label()}:")
            from django.db import connections
            from django.test import Client

            connections.close_all()
            cli = time_run_eval(outputs_file)
            print(f"  Evalgate run_eval --outputs, whole process: {cli:.2f} s")
            api = request_and_wait(Client(SERVER_NAME="127.0.0.1"), gate, secret, outputs, "api")["decided_s"]
            print(f"  Evalgate POST .../checks/ + 1 rqworker, until decided: {api:.2f} s")
        finally:
            stop_worker(worker)
            flush_redis(REDIS_URL)
        if version is None:
            print(
                "  promptfoo: skipped, `npx --no-install promptfoo@0.121.20` is not available "
                "(this benchmark installs nothing)"
            )
            return
        config = write_promptfoo_suite(directory, args.cases)
        pf = time_promptfoo(config)
        print(f"  promptfoo {version} eval, whole process: {pf:.2f} s")
        print_ratio("run_eval --outputs / promptfoo eval", cli / pf, "<= 0.1")
        print_ratio("API + 1 rqworker until decided / promptfoo eval", api / pf, "<= 0.143")


if __name__ == "__main__":
    main()
