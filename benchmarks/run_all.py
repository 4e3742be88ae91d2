"""Run every benchmark in turn (one subprocess each, time-bounded) and print a table of their ratios.

Each script prints its own report and `ratio: <name> = <value> (target: ...)` lines; this
collects those lines. Benchmarks print, never assert: the exit status is non-zero only
when a script crashed or ran out of time.

    make bench                                      # the issues' sizes, about 15 minutes
    .venv/bin/python benchmarks/run_all.py --quick  # small sizes, a smoke test (about 2 minutes)
    .venv/bin/python benchmarks/run_all.py judge api
"""

import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RATIO = re.compile(r"^ratio: (?P<name>.+?) = (?P<value>[-\d.naif]+)(?: \(target: (?P<target>.*)\))?$")


@dataclass
class Benchmark:
    name: str
    script: str
    timeout_s: float
    args: list[str] = field(default_factory=list)  # the scripts' defaults are the issue's sizes
    quick_args: list[str] = field(default_factory=list)


BENCHMARKS = [
    Benchmark("grading", "grading_throughput.py", 300, quick_args=["--cases", "1000", "--repeat", "1"]),
    # In-process too, as a reference: what the workers add to the same job.
    Benchmark("judge", "judge_throughput.py", 300, ["--workers", "0", "1", "2"], ["--calls", "400"]),
    Benchmark("api", "api_latency.py", 300, quick_args=["--clients", "50", "--duration", "5"]),
    Benchmark("import", "import_cases.py", 420, quick_args=["--cases", "10000"]),
    Benchmark("traces", "trace_ingestion.py", 900, quick_args=["--traces", "10000", "--stored", "100000"]),
    Benchmark("check", "check_path.py", 900, quick_args=["--cases", "1000", "5000"]),
    Benchmark("promptfoo", "versus_promptfoo.py", 900, quick_args=["--cases", "1000"]),
    # Not a speed benchmark: the refusal detector's precision and recall on its labelled corpus.
    Benchmark("refusal", "refusal_detector.py", 120),
]


@dataclass
class Outcome:
    benchmark: Benchmark
    load_before: float  # the 1-minute load average when it started: other work skews a run
    seconds: float
    status: str  # "ok", "failed (exit N)", "timed out"
    ratios: list[tuple[str, str, str]]


def run(benchmark: Benchmark, quick: bool) -> Outcome:
    extra = [*benchmark.args, *(benchmark.quick_args if quick else [])]
    load_before = os.getloadavg()[0]
    print(
        f"\n=== {benchmark.name}: {' '.join([benchmark.script, *extra])} (load average {load_before:.2f})",
        flush=True,
    )
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / benchmark.script), *extra],
        cwd=BENCH_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    ratios: list[tuple[str, str, str]] = []

    def relay() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            print(line, end="", flush=True)
            if match := RATIO.match(line.strip()):
                ratios.append((match["name"], match["value"], match["target"] or ""))

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    try:
        status = (
            "ok" if process.wait(timeout=benchmark.timeout_s) == 0 else f"failed (exit {process.returncode})"
        )
    except subprocess.TimeoutExpired:
        # SIGTERM lets the script stop its servers and workers and drop its scratch database.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        status = f"timed out after {benchmark.timeout_s:.0f} s"
    reader.join(timeout=5)
    return Outcome(benchmark, load_before, time.monotonic() - started, status, ratios)


def summary(outcomes: list[Outcome], quick: bool) -> None:
    header = ("benchmark", "ratio", "value", "target", "load before")
    rows = [
        (o.benchmark.name, name, value, target, f"{o.load_before:.2f}")
        for o in outcomes
        for name, value, target in (o.ratios or [("(no ratio)", "-", "")])
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    sizes = ", quick sizes" if quick else ""
    print(f"\n=== summary ({date.today()}, {platform.node()}, {cpu_count()} cores{sizes})")
    print(line.format(*header).rstrip())
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row).rstrip())
    print()
    for o in outcomes:
        print(f"{o.benchmark.name:<10} {o.status:<24} {o.seconds:6.1f} s")


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = [b.name for b in BENCHMARKS]
    parser.add_argument("only", nargs="*", metavar="NAME", help=f"run only these, any of: {', '.join(names)}")
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the suite runs, not speed")
    args = parser.parse_args()
    unknown = set(args.only) - set(names)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(names)}")
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    started = time.monotonic()
    outcomes = [run(benchmark, args.quick) for benchmark in chosen]
    summary(outcomes, args.quick)
    print(f"{'all':<10} {'':<24} {time.monotonic() - started:6.1f} s")
    sys.exit(0 if all(o.status == "ok" for o in outcomes) else 1)


if __name__ == "__main__":
    main()
