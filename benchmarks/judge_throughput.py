"""Judge throughput: N LLM-judge calls against a local OpenAI-compatible server with fixed latency.

For each worker count, one run of N cases with one llm_judge grader goes through the real
job path and the real openai client: with workers >= 1, start_run enqueues its chunks on
RQ (Redis db 14) and that many `manage.py rqworker default` processes grade them against a
scratch PostgreSQL database; with 0 the jobs run in this process (embedded mode). The fake
server (tests/fake_openai.py) runs in its own process and answers every call after
--latency seconds.

Endpoint.max_concurrency bounds the calls in flight per worker process, so the floor is
calls x latency / (workers x max_concurrency); the ratio printed is wall time / floor.
Wall time runs from start_run to the run's finished_at (workers are started beforehand, as
in production); every output differs, so no answer comes from the judge cache.

start_run rounds --chunk-size up to whole waves of --concurrency, as it does for every run
with LLM work (200 at 16 in flight -> 208: 13 full waves, the same 13 that 200 took with
the last one half full), and the last chunk takes the remainder: 2,000 calls are 9 chunks
of 208 and one of 128, 125 waves in all. Targets (issue 16): at most 1.2x the floor in
process and with 1 worker, and 1 -> 2 workers at least 1.8x faster. Two workers cannot
split 9 x 13 + 8 waves evenly (the busier one has 65 of them, 4% over half), and on a
2-core machine their 32 calls in flight share the cores with PostgreSQL and the server.

    .venv/bin/python benchmarks/judge_throughput.py [--calls 2000] [--latency 0.1]
        [--concurrency 16] [--workers 1 2] [--chunk-size 200]
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _setup import (
    BENCH_DIR,
    REDIS_URL,
    database_label,
    django_on_postgres,
    flush_redis,
    print_ratio,
    reachable,
    start_process,
    stop_process,
    wait_until,
)


class FakeServer:
    """benchmarks/fake_server.py as a child process; counters come back over a pipe."""

    def __init__(self, latency: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "fake_server.py"), "--latency", str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base_url = self.process.stdout.readline().strip()  # type: ignore[union-attr]
        if not self.base_url.startswith("http://127.0.0.1:"):
            raise SystemExit(f"the fake OpenAI server did not start (said {self.base_url!r})")

    def counters(self) -> dict[str, Any]:
        """Calls so far, the most in flight at once since the last call, CPU seconds used."""
        self.process.stdin.write("\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self.process.stdout.readline())  # type: ignore[union-attr]

    def stop(self) -> None:
        self.process.stdin.close()  # type: ignore[union-attr]
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def cpu_seconds(pids: list[int]) -> float | None:
    """CPU time of these processes and their reaped children (work horses), from /proc (Linux)."""
    total = 0.0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        utime, stime, cutime, cstime = (int(f) for f in stat.rsplit(")", 1)[1].split()[11:15])
        total += (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the server takes per call")
    parser.add_argument("--concurrency", type=int, default=16, help="Endpoint.max_concurrency (per worker)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="0: jobs in this process")
    parser.add_argument("--chunk-size", type=int, default=200)
    args = parser.parse_args()
    use_redis = any(args.workers) and reachable(REDIS_URL, 6379)
    if any(args.workers) and not use_redis:
        print(
            f"NOTE: Redis is unreachable at {REDIS_URL}: running the jobs in-process instead of on workers."
        )
        args.workers = [0]
    with django_on_postgres(REDIS_URL if use_redis else None):
        fake = FakeServer(args.latency)
        try:
            bench(args, fake)
        finally:
            fake.stop()
            if use_redis:
                flush_redis(REDIS_URL)


def setup(args: argparse.Namespace, base_url: str) -> Any:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from datasets_app import services as datasets
    from datasets_app.models import Case
    from grading_app import services as grading

    users = get_user_model().objects
    owner, author = users.create_user("owner"), users.create_user("author")
    owner.groups.add(Group.objects.get(name="Rubric owner"))
    failure_class = datasets.save_failure_class(slug="helpfulness", name="Helpfulness")
    dataset = datasets.save_dataset(slug="bench", name="Bench", owner=None)
    Case.objects.bulk_create(
        Case(
            dataset=dataset,
            key=f"c{i}",
            tier="trusted",
            status="active",
            failure_class=failure_class,
            input={"messages": [{"role": "user", "content": f"Question {i}"}]},
            expected={},
        )
        for i in range(args.calls)
    )
    endpoint = grading.save_endpoint(
        name="local", base_url=base_url, max_concurrency=args.concurrency, timeout_s=30
    )
    rubric = grading.save_rubric(slug="helpful", name="Helpful", owner=owner)
    version = grading.create_rubric_version(
        rubric, actor=author, criteria="Helpful.", endpoint=endpoint, model="judge"
    )
    grading.approve_rubric_version(grading.submit_rubric_version(version, actor=author), actor=owner)
    grading.save_grader(slug="helpful", kind="llm_judge", rubric=rubric)
    return dataset


def start_workers(count: int, log_dir: Path) -> list[subprocess.Popen]:
    from rq import Worker

    from evalproject.queues import get_redis_connection

    flush_redis(REDIS_URL)
    workers = [
        start_process(
            [sys.executable, "manage.py", "rqworker", "default", "--name", f"bench-{os.getpid()}-{n}"],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            log=log_dir / f"worker-{count}-{n}.log",
        )
        for n in range(count)
    ]
    connection = get_redis_connection()

    def registered() -> bool:
        if any(w.poll() is not None for w in workers):
            logs = "".join(p.read_text(errors="replace") for p in log_dir.glob(f"worker-{count}-*.log"))
            raise SystemExit(f"an rqworker exited at start:\n{logs}")
        return len(Worker.all(connection=connection)) >= count

    wait_until(registered, timeout=60, what=f"{count} rqworker(s) to register")
    return workers


def measure(args: argparse.Namespace, dataset: Any, workers: int, fake: FakeServer) -> float:
    from django.test import override_settings

    from grading_app import services as grading
    from grading_app.models import Grade, Run, RunChunk
    from grading_app.outputs import parse_outputs

    log_dir = Path(os.environ["EVALGATE_VAR_DIR"])
    processes = start_workers(workers, log_dir) if workers else []
    # Outputs differ from every other phase's, so each call is live (no judge cache hits).
    outputs = parse_outputs(
        [{"case": f"c{i}", "output": f"Answer {i} ({workers})"} for i in range(args.calls)]
    )
    floor = args.calls * args.latency / (max(workers, 1) * args.concurrency)
    before = fake.counters()
    # Job-side CPU: the workers and their work horses, or this process when jobs run here.
    job_pids = [p.pid for p in processes] or [os.getpid()]
    job_cpu = cpu_seconds(job_pids)
    try:
        with override_settings(**({} if workers else {"REDIS_URL": ""})):
            started = time.time()
            run = grading.start_run(
                dataset=dataset, candidate=f"bench-{workers}", outputs=outputs, chunk_size=args.chunk_size
            )

            def finished() -> bool:
                run.refresh_from_db()
                return run.is_finished

            wait_until(finished, timeout=10 * floor + 60, what="the run to finish", interval=0.05)
            time.sleep(0.2)  # let the last work horse be reaped, so its CPU time is counted
            job_cpu_after = cpu_seconds(job_pids)
    finally:
        for process in processes:
            stop_process(process)
    wall = run.finished_at.timestamp() - started
    counters = fake.counters()
    graded = Grade.objects.filter(case_result__run=run, passed=True).count()
    mode = f"{workers} rqworker(s)" if workers else "in-process (no workers)"
    print(f"  {mode}: total concurrency {max(workers, 1) * args.concurrency}")
    print(
        f"    {counters['calls'] - before['calls']} calls, most in flight {counters['max_in_flight']}, "
        f"graded {graded}/{args.calls}, run {Run.objects.get(pk=run.pk).status}"
    )
    print(f"    wall {wall:.2f} s; floor calls x latency / concurrency {floor:.2f} s")
    # Where the time goes: a chunk's calls go out in waves of max_concurrency, so a chunk
    # cannot beat ceil(chunk / concurrency) x latency; the rest is the job's own work.
    chunks = list(RunChunk.objects.filter(run=run).values_list("case_ids", "started_at", "finished_at"))
    size = max(len(ids) for ids, _, _ in chunks)
    full = [(end - start).total_seconds() for ids, start, end in chunks if len(ids) == size]
    chunk_floor = math.ceil(size / args.concurrency) * args.latency
    mean_s = statistics.fmean(full)
    print(
        f"    {len(chunks)} chunks of up to {size} calls; those of {size} took {mean_s:.2f} s "
        f"on average (their calls alone: {chunk_floor:.2f} s)"
    )
    # Outside the chunks: start_run (outputs, dispatch) before, the finaliser after; with one
    # worker (or none) the chunks run back to back, so what remains is the gaps between them.
    first_start = min(start for _, start, _ in chunks).timestamp()
    last_end = max(end for _, _, end in chunks).timestamp()
    in_chunks = sum((end - start).total_seconds() for _, start, end in chunks)
    gaps = f", between chunks {last_end - first_start - in_chunks:.2f} s" if workers <= 1 else ""
    print(
        f"    before the first chunk {first_start - started:.2f} s, "
        f"after the last {run.finished_at.timestamp() - last_end:.2f} s{gaps}"
    )
    label = f"{workers} worker{'s' if workers > 1 else ''}" if workers else "in-process"
    if job_cpu is not None and job_cpu_after is not None:
        # What the floor's pace would ask of the machine (PostgreSQL's own CPU not counted).
        job_ms = (job_cpu_after - job_cpu) / args.calls * 1000
        server_ms = (counters["cpu_s"] - before["cpu_s"]) / args.calls * 1000
        cores = (job_ms + server_ms) / 1000 * args.calls / floor
        print(
            f"    CPU per call: {job_ms:.1f} ms job side, {server_ms:.1f} ms fake server; "
            f"the floor's pace needs {cores:.2f} of {os.cpu_count()} cores for these alone"
        )
        outside = job_ms - args.client_ms
        print(
            f"    CPU per call outside the HTTP client: {outside:.2f} ms "
            f"(job side {job_ms:.2f} ms - the client alone {args.client_ms:.2f} ms)"
        )
        print_ratio(f"judge CPU per call outside the HTTP client / 1 ms, {label}", outside, "<= 1")
    print_ratio(f"judge wall / floor, {label}", wall / floor, "<= 1.2" if workers <= 1 else "")
    return wall


def client_cpu_ms(args: argparse.Namespace, calls: int = 1000) -> float:
    """CPU per call of the HTTP client alone (openai + httpx, no Evalgate code): the same client
    (client_for), the same request (ask_json's body and options, the first case's real judge
    prompt) and the same number of threads in flight, in this process. Subtracted from the job
    side's CPU per call, it leaves what Evalgate spends per judge call outside the client."""
    from concurrent.futures import ThreadPoolExecutor

    from grading_app import llm
    from grading_app.graders.base import GradingInput
    from grading_app.judging import render_prompt
    from grading_app.models import Endpoint, RubricVersion

    version = RubricVersion.objects.get()
    item = GradingInput(
        case_input={"messages": [{"role": "user", "content": "Question 0"}]},
        expected={},
        output="Answer 0 (client)",
    )
    body = {
        "model": version.model,
        "messages": [{"role": "user", "content": render_prompt(version, item, {})}],
        "temperature": 0,
        "response_format": {"type": "json_object"},
    }
    client = llm.client_for(Endpoint.objects.get())

    def call(_: int) -> object:
        return client.post("/chat/completions", body=body, cast_to=object, options=llm._JUDGE_OPTIONS)

    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        list(pool.map(call, range(args.concurrency)))  # connections opened, threads started
        started = time.process_time()
        list(pool.map(call, range(calls)))
        return (time.process_time() - started) / calls * 1000


def bench(args: argparse.Namespace, fake: FakeServer) -> None:
    dataset = setup(args, fake.base_url)
    args.client_ms = client_cpu_ms(args)
    print(
        f"judge throughput: {args.calls} calls, latency {args.latency * 1000:.0f} ms, "
        f"{args.concurrency} in flight per worker, chunk size {args.chunk_size} "
        f"(rounded up to whole waves), on {database_label()}"
    )
    walls = {workers: measure(args, dataset, workers, fake) for workers in args.workers}
    if 1 in walls and 2 in walls:
        print_ratio("judge wall 1 worker / 2 workers", walls[1] / walls[2], ">= 1.8, ideal 2")


if __name__ == "__main__":
    main()
