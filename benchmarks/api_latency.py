"""The verdict API under load: GET /api/v1/checks/{id}/ on gunicorn, beside a trivial DRF endpoint.

gunicorn serves the project (DEBUG off, 4 sync workers by default) on a scratch PostgreSQL
database, with Redis db 14 as the cache that holds the rate-limit counters, as in
production. The same server also serves /bench/ping/ (benchmarks/bench_urls.py): a DRF view
with no authentication, permission or throttle, the ceiling any endpoint of this stack can
reach, and /bench/ping-io/ and /bench/ping-redis/, the same view making a PostgreSQL query and
a Redis call, or the Redis call only (what the I/O alone costs). --clients concurrent clients
(each with its own deploy token, as separate CI pipelines would have) call each endpoint in
turn, --rounds times, for --duration seconds per endpoint in all.

Each request opens a connection (gunicorn's sync workers close it after every response), so
latency counts connecting and queueing for a free worker. Printed per endpoint: requests,
throughput, p50, p99 and errors (anything but a 200 with the expected body, or no answer
within --timeout); then the verdict API's p99 and throughput against the ceiling's.

    .venv/bin/python benchmarks/api_latency.py [--clients 200] [--duration 30] [--gunicorn-workers 4]
        [--gunicorn-threads 1] [--rounds 3]
"""

import argparse
import asyncio
import os
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
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

PING = "/bench/ping/"
PING_IO = "/bench/ping-io/"
PING_REDIS = "/bench/ping-redis/"


@dataclass
class Load:
    """What one endpoint answered during one measurement."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies) + sum(self.errors.values())

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def add(self, other: "Load") -> None:
        self.latencies += other.latencies
        self.errors += other.errors
        self.seconds += other.seconds

    def line(self, label: str) -> str:
        errors = ", ".join(f"{n} x {kind}" for kind, n in self.errors.most_common()) or "none"
        return (
            f"  {label:<28} {self.requests:7,} requests {self.requests / self.seconds:7.1f} req/s  "
            f"p50 {self.percentile(50) * 1000:6.1f} ms  p99 {self.percentile(99) * 1000:7.1f} ms  "
            f"errors: {errors}"
        )


async def one_client(
    port: int, path: str, secret: str, marker: bytes, until: float, timeout: float, load: Load
) -> None:
    auth = f"Authorization: Bearer {secret}\r\n" if secret else ""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n".encode()
    while time.perf_counter() < until:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    writer.write(request)
                    answer = await reader.read()  # to the end: the server closes the connection
                finally:
                    writer.close()
        except TimeoutError:
            load.errors["timeout"] += 1
            continue
        except OSError as exc:
            load.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.01)  # a refused connection returns at once; do not spin
            continue
        elapsed = time.perf_counter() - started
        status = answer[9:12].decode(errors="replace")
        if status != "200":
            load.errors[f"HTTP {status}"] += 1
        elif marker not in answer:
            load.errors["unexpected body"] += 1
        else:
            load.latencies.append(elapsed)


async def run_load(port: int, path: str, secrets: list[str], marker: bytes, args: argparse.Namespace) -> Load:
    load = Load()
    started = time.perf_counter()
    until = started + args.duration
    await asyncio.gather(
        *(one_client(port, path, secret, marker, until, args.timeout, load) for secret in secrets)
    )
    load.seconds = time.perf_counter() - started
    return load


def setup(clients: int) -> tuple[int, list[str]]:
    """A decided check on a gate, and one deploy token per client; returns (check id, secrets)."""
    from django.contrib.auth import get_user_model

    from datasets_app import services as datasets
    from datasets_app.models import Case
    from gates_app.choices import CheckStatus
    from gates_app.services import request_check, save_gate
    from gates_app.tokens import create_token
    from grading_app.services import save_grader

    owner = get_user_model().objects.create_user("owner")
    failure_class = datasets.save_failure_class(slug="refunds", name="Refunds")
    dataset = datasets.save_dataset(slug="bench", name="Bench", owner=owner)
    Case.objects.bulk_create(
        Case(
            dataset=dataset,
            key=f"c{i}",
            tier="trusted",
            status="active",
            failure_class=failure_class,
            input={"messages": [{"role": "user", "content": f"Can I get a refund after {i} days?"}]},
            expected={"answer": "No"},
        )
        for i in range(50)
    )
    grader = save_grader(slug="answer-exact", kind="exact_match")
    rules = [
        {
            "name": "trusted accuracy",
            "metric": "pass_rate",
            "grader": grader,
            "scope": {"tier": "trusted"},
            "threshold": 0.9,
            "severity": "block",
        },
        {"name": "latency budget", "metric": "latency_p95_ms", "threshold": 2000, "severity": "warn"},
    ]
    gate = save_gate(slug="release", name="Release", owner=owner, dataset=dataset, rules=rules)
    outputs = [{"case": f"c{i}", "output": "No", "metrics": {"latency_ms": 800}} for i in range(50)]
    check, _ = request_check(gate=gate, candidate="v1", outputs=outputs)  # jobs run in-process
    check.refresh_from_db()
    if check.status != CheckStatus.DONE or check.decided_at is None:  # "pending" is a verdict too
        raise SystemExit("the check is not decided: the benchmark would measure a pending check")
    secrets = [create_token(name=f"ci-{n}", gates=[gate], actor=owner)[1] for n in range(clients)]
    return check.pk, secrets


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gunicorn(args: argparse.Namespace, port: int, redis_url: str | None) -> Any:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench_settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH")])),
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    log = Path(os.environ["EVALGATE_VAR_DIR"]) / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "evalproject.wsgi", "-w", str(args.gunicorn_workers)]
    if args.gunicorn_threads > 1:  # gunicorn then runs gthread workers
        command += ["--threads", str(args.gunicorn_threads)]
    command += ["-b", f"127.0.0.1:{port}", "--backlog", "2048"]
    process = start_process(command, env=env, log=log)

    def answering() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited:\n{log.read_text(errors='replace')}")
        try:
            return asyncio.run(probe(port)) == "200"
        except OSError:
            return False

    wait_until(answering, timeout=60, what="gunicorn to answer", interval=0.2)
    return process


async def probe(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {PING} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    return answer[9:12].decode()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30, help="seconds of load per endpoint")
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    parser.add_argument("--gunicorn-threads", type=int, default=1, help="above 1: gthread workers")
    parser.add_argument("--rounds", type=int, default=3, help="turns each endpoint takes, alternating")
    parser.add_argument(
        "--timeout", type=float, default=10, help="seconds before a request counts as an error"
    )
    args = parser.parse_args()
    redis_url = REDIS_URL if reachable(REDIS_URL, 6379) else None
    if redis_url is None:
        print(f"NOTE: Redis is unreachable at {REDIS_URL}: rate-limit counters stay in each gunicorn worker.")
    with django_on_postgres():
        # One more token than clients: the one-client-at-a-time phase spends a client's whole
        # budget for the minute (1,000+ requests), so it polls with a token of its own.
        check_id, secrets = setup(args.clients + 1)
        from django.db import connections

        connections.close_all()  # the server's workers are the only database clients from here on
        if redis_url:
            flush_redis(redis_url)
        port = free_port()
        server = start_gunicorn(args, port, redis_url)
        try:
            bench(args, port, check_id, secrets, cache="Redis" if redis_url else "per-process")
        finally:
            stop_process(server)
            if redis_url:
                flush_redis(redis_url)


def bench(args: argparse.Namespace, port: int, check_id: int, secrets: list[str], cache: str) -> None:
    check = f"/api/v1/checks/{check_id}/"
    no_auth = [""] * args.clients
    kind = f"gthread ({args.gunicorn_threads} threads)" if args.gunicorn_threads > 1 else "sync"
    print(
        f"verdict API: {args.clients} concurrent clients, {args.duration:.0f} s per endpoint, gunicorn "
        f"{args.gunicorn_workers} {kind} workers, {database_label()}, {cache} rate-limit cache"
    )
    # Warm-up, not counted: each worker's first requests load code and open its connections.
    warm = argparse.Namespace(**{**vars(args), "duration": min(3.0, args.duration)})
    asyncio.run(run_load(port, PING, no_auth[:20], b'"ok"', warm))
    asyncio.run(run_load(port, check, secrets[:20], b'"verdict"', warm))
    # One client at a time: the service time, with no queueing for a worker.
    alone = argparse.Namespace(**{**vars(args), "duration": min(2.0, args.duration)})
    for path, secret, marker in ((PING, "", b'"ok"'), (check, secrets[-1], b'"verdict"')):
        single = asyncio.run(run_load(port, path, [secret], marker, alone))
        print(f"  one client at a time, {path}: p50 {single.percentile(50) * 1000:.1f} ms")

    # The endpoints take turns (--rounds of duration / rounds each), so a neighbour's load on a
    # shared machine weighs on both sides of the ratio rather than on whichever ran during it.
    secrets = secrets[: args.clients]
    ping, ping_io, ping_redis, verdicts = Load(), Load(), Load(), Load()
    phase = argparse.Namespace(**{**vars(args), "duration": args.duration / args.rounds})
    for _ in range(args.rounds):
        ping.add(asyncio.run(run_load(port, PING, no_auth, b'"ok"', phase)))
        verdicts.add(asyncio.run(run_load(port, check, secrets, b'"verdict"', phase)))
        ping_io.add(asyncio.run(run_load(port, PING_IO, no_auth, b'"ok"', phase)))
        ping_redis.add(asyncio.run(run_load(port, PING_REDIS, no_auth, b'"ok"', phase)))
    print(ping.line(f"GET {PING} (ceiling)"))
    print(ping_io.line(f"GET {PING_IO} (+ the I/O)"))
    print(ping_redis.line(f"GET {PING_REDIS} (Redis only)"))
    print(verdicts.line("GET /api/v1/checks/{id}/"))
    if verdicts.latencies and ping_io.latencies:
        # No target: how close the verdict's own code comes to the round trips it cannot skip.
        io_throughput = (verdicts.requests / verdicts.seconds) / (ping_io.requests / ping_io.seconds)
        print(f"  verdict API req/s / ping-io req/s = {io_throughput:.2f} (the I/O floor, no target)")
    if verdicts.latencies and ping.latencies:
        print_ratio("verdict API p99 / ping p99", verdicts.percentile(99) / ping.percentile(99), "<= 2")
        throughput = (verdicts.requests / verdicts.seconds) / (ping.requests / ping.seconds)
        print_ratio("verdict API req/s / ping req/s", throughput, ">= 0.7")
    errors = sum(verdicts.errors.values())
    print_ratio("verdict API errors / requests", errors / max(verdicts.requests, 1), "0")


if __name__ == "__main__":
    main()
