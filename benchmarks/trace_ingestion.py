"""Production traces: ingestion through the API, online grading keeping up, and the monitor's
queries at a million stored traces.

1. Ingestion: --traces records (default 100,000) POSTed to /api/v1/traces/ in batches of
   --batch (500) by --posters concurrent clients, to gunicorn (--gunicorn-workers sync workers)
   on a scratch PostgreSQL database; a monitor samples 10% of them for three code graders
   (contains, not_contains, regex), graded by one real `rqworker` process meanwhile.
   Baseline: a plain bulk insert of the same rows into the same table (psycopg, multi-row
   INSERT statements of --batch rows, the JSON columns serialised in Python), in this process.
   A share of the traces (--unreported, default half) report neither `refused` nor `escalated`:
   ingestion detects them from the answer and the trace; the fill's cost per trace is timed
   on the same records in this process.
2. Online grading: samples graded per second, against what 10% of the ingestion rate asks.
3. Queries at --stored traces (default 1,000,000, filled in SQL over 30 days, 10% sampled and
   graded): the monitor page (its charts over 24 windows and its window table), one drift
   evaluation, and a post-release verdict, each the best of 3 after a warm-up.

    .venv/bin/python benchmarks/trace_ingestion.py [--traces 100000] [--stored 1000000]
"""

import argparse
import datetime as dt
import json
import os
import random
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
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

QUESTIONS = [
    "Can I get a refund after {n} days? My email is jo{n}@example.com.",
    "Where is my order {n}? It was due on Monday.",
    "Do you ship to Norway? I need it before the {n}th.",
    "My card ending 4111 1111 1111 1111 was charged twice for order {n}.",
]
ANSWERS = [
    "Refunds are possible within 30 days of delivery; order {n} is past that window, so I cannot refund it.",
    "Order {n} left our warehouse on Monday and should arrive within two working days.",
    "Yes, we ship to Norway; standard delivery takes four to six working days.",
    "I can see two charges for order {n}; the duplicate will be reversed within five days.",
]


def records(
    n: int, prefix: str, start: dt.datetime, *, seed: int = 1, unreported: float = 0.5
) -> list[dict[str, Any]]:
    """Realistic support-bot traces: chat input, an answer, one tool call, metrics, metadata; a
    share ``unreported`` of them without `refused` and `escalated` (a source that does not say)."""
    rng = random.Random(seed)
    # Its own generator: the records are the ones measured before this knob existed, plus or
    # minus their signals.
    silent = random.Random(seed + 1)
    out = []
    for i in range(n):
        kind = i % len(QUESTIONS)
        refused = rng.random() < 0.03
        answer = "I'm sorry, I can't help with that." if refused else ANSWERS[kind].format(n=i)
        if rng.random() < 0.02:
            answer += " Use code STAFF40 for a discount."
        signals = {} if silent.random() < unreported else {"refused": refused, "escalated": False}
        out.append(
            {
                "id": f"{prefix}-{i}",
                "time": (start + dt.timedelta(milliseconds=36 * i)).isoformat(),
                "release": "v2",
                "input": {"messages": [{"role": "user", "content": QUESTIONS[kind].format(n=i)}]},
                "output": answer,
                "trace": [{"type": "tool_call", "name": "lookup_order", "arguments": {"id": i}}],
                "metrics": {
                    "latency_ms": round(max(1.0, rng.gauss(850, 200)), 1),
                    "ttft_ms": round(rng.gauss(180, 40), 1),
                    "input_tokens": 300 + i % 50,
                    "output_tokens": 40 + i % 30,
                    "cost_usd": 0.0004,
                    **signals,
                },
                "metadata": {"route": ["refunds", "orders", "shipping", "billing"][kind]},
            }
        )
    return out


def setup() -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    from datasets_app import services as datasets
    from gates_app.services import save_gate
    from gates_app.tokens import create_token
    from grading_app.services import save_grader
    from monitoring_app.models import Monitor, Source
    from monitoring_app.services import save_monitor

    owner = get_user_model().objects.create_superuser("owner")
    dataset = datasets.save_dataset(slug="bench", name="Bench", owner=owner)
    rules = [
        {"stage": "production", "name": "live latency", "metric": "latency_p95_ms", "mode": "no_regression",
         "margin": 100},
        {"stage": "production", "name": "live refusals", "metric": "refusal_rate", "mode": "no_regression",
         "margin": 0.02},
    ]  # fmt: skip
    gate = save_gate(slug="release", name="Release", owner=owner, dataset=dataset, rules=rules)
    source = Source.objects.create(
        slug="web",
        name="Web",
        owner=owner,
        redaction=[{"field": "*", "preset": "email"}, {"field": "*", "preset": "card_number"}],
    )
    baseline_source = Source.objects.create(slug="baseline", name="Baseline", owner=owner)
    gate.sources.add(source)
    graders = [
        save_grader(slug="mentions-policy", kind="contains", config={"mode": "any"}),
        save_grader(slug="no-staff-codes", kind="not_contains"),
        save_grader(
            slug="no-card-numbers", kind="regex", config={"pattern": r"^(?!.*\d{4} \d{4} \d{4} \d{4})"}
        ),
    ]
    monitor = Monitor(slug="web-live", name="Web, live", source=source, owner=owner, sample_rate=0.1)
    monitor.expected = {
        "contains": ["order", "refund", "ship", "charge", "sorry"],
        "not_contains": ["STAFF40"],
    }
    save_monitor(monitor, actor=owner, graders=graders)
    _, secret = create_token(name="traces", gates=[gate], scopes=["traces:write"], actor=owner)
    return {
        "secret": secret,
        "source": source,
        "baseline_source": baseline_source,
        "monitor": monitor,
        "gate": gate,
    }


def post(port: int, secret: str, body: bytes) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/traces/",
        data=body,
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


COLUMNS = (
    "source_id", "client_id", "time", "received_at", "release", "origin", "input", "output", "trace",
    "ttft_ms", "latency_ms", "input_tokens", "output_tokens", "cost_usd", "retries", "refused", "escalated",
    "tool_calls", "trace_steps", "thumbs", "feedback_score", "feedback_comment", "metadata",
)  # fmt: skip


def _row(r: dict[str, Any], source_id: int, now: dt.datetime) -> tuple:
    m, steps = r["metrics"], len(r["trace"])
    dumps = json.dumps
    return (
        source_id, r["id"], r["time"], now, r["release"], "api", dumps(r["input"]), dumps(r["output"]),
        dumps(r["trace"]), m["ttft_ms"], m["latency_ms"], m["input_tokens"], m["output_tokens"],
        m["cost_usd"], None, m.get("refused"), m.get("escalated"), steps, steps, "", None, "",
        dumps(r["metadata"]),
    )  # fmt: skip


def quiet(pg: Any) -> None:
    """Each timed part starts alike: dead rows vacuumed, and no checkpoint of an earlier part's
    writes running into its time (either can double a part's time on this machine)."""
    was, pg.autocommit = pg.autocommit, True
    with pg.cursor() as cursor:
        cursor.execute("VACUUM monitoring_app_trace")
        cursor.execute("CHECKPOINT")
    pg.autocommit = was


def bulk_insert(rows: list[dict[str, Any]], source_id: int, batch: int, *, copy: bool = False) -> float:
    """The baseline: the same rows into the same table straight through the driver, a transaction
    per batch: psycopg's executemany of one INSERT (pipelined), or COPY (the floor)."""
    from django.db import connection

    connection.ensure_connection()
    pg = connection.connection
    with pg.cursor() as cursor:
        cursor.execute("DELETE FROM monitoring_app_trace WHERE source_id = %s", [source_id])
    pg.commit()
    insert = (
        f"INSERT INTO monitoring_app_trace ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    )
    quiet(pg)
    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    for offset in range(0, len(rows), batch):
        with pg.transaction(), pg.cursor() as cursor:
            values = [_row(r, source_id, now) for r in rows[offset : offset + batch]]
            if copy:
                with cursor.copy(f"COPY monitoring_app_trace ({', '.join(COLUMNS)}) FROM STDIN") as out:
                    for value in values:
                        out.write_row(value)
            else:
                cursor.executemany(insert, values)
    return time.perf_counter() - started


def signal_fill_s(rows: list[dict[str, Any]]) -> float:
    """Seconds (best of 3) the detectors take to fill the signals of ``rows`` as ingestion does
    (TraceRecord.columns: grading_app.detectors.missing_signals on the answer and the trace)."""
    from grading_app.detectors import missing_signals
    from grading_app.graders.base import output_text

    inputs = [(output_text(r["output"]), r["trace"], r["metrics"]) for r in rows]
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for text, trace, metrics in inputs:
            missing_signals(text, trace, metrics)
        best = min(best, time.perf_counter() - started)
    return best


def in_process_s(rows: list[dict[str, Any]], source: Any, batch: int) -> float:
    """Seconds to validate and store ``rows`` through ingestion's own functions in this process
    (parse_records, store_records: redaction, the signal fill, COPY), batch by batch, into a
    source no monitor watches; its earlier traces deleted first."""
    from monitoring_app.ingest import store_records
    from monitoring_app.models import Trace
    from monitoring_app.records import parse_records

    Trace.objects.filter(source=source).delete()
    started = time.perf_counter()
    for offset in range(0, len(rows), batch):
        records = parse_records(rows[offset : offset + batch])
        store_records(records, [source] * len(records))
    return time.perf_counter() - started


def fill_share(n: int, start: dt.datetime, source: Any, batch: int) -> tuple[float, float]:
    """Best of 3 (alternating) of storing ``n`` traces in process when all report refused and
    escalated, and when none do: what the fill adds to the ingestion path's own work, without the
    HTTP server and the load around it."""
    reported = records(n, "inproc", start, unreported=0.0)
    silent = records(n, "inproc", start, unreported=1.0)
    times: dict[str, list[float]] = {"reported": [], "silent": []}
    for _ in range(3):
        times["reported"].append(in_process_s(reported, source, batch))
        times["silent"].append(in_process_s(silent, source, batch))
    return min(times["reported"]), min(times["silent"])


def start_gunicorn(port: int, workers: int, redis_url: str) -> Any:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench_settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH")])),
        "ALLOWED_HOSTS": "127.0.0.1",
        "REDIS_URL": redis_url,
    }
    log = Path(os.environ["EVALGATE_VAR_DIR"]) / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "evalproject.wsgi", "-w", str(workers), "--timeout", "120"]
    process = start_process([*command, "-b", f"127.0.0.1:{port}"], env=env, log=log)

    def answering() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    wait_until(answering, timeout=60, what="gunicorn to answer", interval=0.2)
    return process


def start_worker(redis_url: str) -> Any:
    env = {**os.environ, "REDIS_URL": redis_url}
    log = Path(os.environ["EVALGATE_VAR_DIR"]) / "rqworker.log"
    return start_process([sys.executable, "manage.py", "rqworker", "default"], env=env, log=log)


def ingestion(args: argparse.Namespace, world: dict[str, Any], redis_url: str) -> None:
    from django.db import connection, connections

    from monitoring_app.choices import SampleStatus
    from monitoring_app.models import MonitorSample, Trace

    # Live traffic: the last hour's traces (36 ms apart), as an application sends them. (Traces
    # older than the rollup settle time would each bump their source's rollup epoch.)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(milliseconds=36 * args.traces + 60_000)
    rows = records(args.traces, "api", start, unreported=args.unreported)
    # Encoded before the clock starts: a sender's own JSON encoding happens on its machine, not here.
    batches = [
        json.dumps({"traces": rows[i : i + args.batch]}).encode() for i in range(0, len(rows), args.batch)
    ]
    connection.ensure_connection()
    quiet(connection.connection)
    connections.close_all()
    port = 18000 + os.getpid() % 1000
    server = start_gunicorn(port, args.gunicorn_workers, redis_url)
    worker = start_worker(redis_url)
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.posters) as pool:
            answers = list(pool.map(lambda b: post(port, world["secret"], b), batches))
        api_s = time.perf_counter() - started
        stored = sum(a["stored"] for a in answers)
        sampled = MonitorSample.objects.filter(monitor=world["monitor"]).count()
        backlog = MonitorSample.objects.filter(monitor=world["monitor"], status=SampleStatus.PENDING).count()
        wait_until(
            lambda: (
                not MonitorSample.objects.filter(
                    monitor=world["monitor"], status=SampleStatus.PENDING
                ).exists()
            ),
            timeout=600,
            what="the samples graded",
            interval=0.05,
        )
        graded_s = time.perf_counter() - started
    finally:
        stop_process(worker)
        stop_process(server)
    assert stored == args.traces == Trace.objects.filter(source=world["source"]).count(), stored
    baseline_rows = records(args.traces, "bulk", start, unreported=args.unreported)
    baseline = world["baseline_source"].pk
    bulk_s = min(bulk_insert(baseline_rows, baseline, args.batch) for _ in range(2))
    copy_s = min(bulk_insert(baseline_rows, baseline, args.batch, copy=True) for _ in range(2))
    rate = args.traces / api_s
    fill_s = signal_fill_s(rows)
    unreported = sum("refused" not in r["metrics"] for r in rows)
    print(
        f"ingestion: {args.traces:,} traces in batches of {args.batch}, {args.posters} posters, gunicorn "
        f"{args.gunicorn_workers} workers + 1 rqworker, {database_label()}, redaction on, "
        f"{unreported:,} not reporting refused/escalated"
    )
    print(f"  through the API        {api_s:7.2f} s  {rate:8,.0f} traces/s")
    print(f"  plain bulk insert      {bulk_s:7.2f} s  {args.traces / bulk_s:8,.0f} traces/s  (executemany)")
    print(f"  COPY, the floor        {copy_s:7.2f} s  {args.traces / copy_s:8,.0f} traces/s")
    print(
        f"  sampled for grading    {sampled:,} ({sampled / args.traces:.1%}), {backlog:,} still pending "
        f"when the last post returned, all graded {graded_s - api_s:.2f} s after it"
    )
    per_silent = fill_s / unreported * 1e6 if unreported else 0.0
    print(
        f"  signal fill            {fill_s:7.2f} s  {per_silent:8.1f} us per trace not reporting "
        f"(in this process, one core; {fill_s / args.traces * 1e6:.1f} us per trace overall)"
    )
    print_ratio("trace ingestion: API time / plain bulk insert", api_s / bulk_s, "<= 2")
    print_ratio("trace ingestion: signal fill time (one core) / API time", fill_s / api_s)
    n = max(1000, args.traces // 5)
    reported_s, silent_s = fill_share(n, start, world["baseline_source"], args.batch)
    print(
        f"  in process, {n:,} traces: {reported_s / n * 1e6:.0f} us per trace when all report the "
        f"signals, {silent_s / n * 1e6:.0f} us when none do (best of 3 each)"
    )
    print_ratio("trace ingestion in process: none reporting / all reporting", silent_s / reported_s)
    print_ratio("trace ingestion: API time / COPY", api_s / copy_s)
    print_ratio("trace ingestion: traces/s / 2,000", rate / 2000, ">= 1")
    # Keeping up: the backlog never grows, so the last samples are graded moments after the last
    # trace arrives. 1 would be "graded the instant it arrives"; 0.95 allows a lag of 5% of the
    # traffic's duration (a falling-behind worker's lag grows with the traffic instead).
    print_ratio(
        "online grading: ingestion time / time until every sample was graded", api_s / graded_s, ">= 0.95"
    )


def fill(world: dict[str, Any], stored: int) -> dt.datetime:
    """``stored`` traces over 30 days (releases v1..v4, a week each and more), 10% sampled with a
    grade from each grader, written in SQL. Returns the end of the filled period."""
    from django.db import connection

    end = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    start = end - dt.timedelta(days=30)
    source, monitor = world["source"], world["monitor"]
    step = 30 * 86400 / stored
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM monitoring_app_tracegrade")
        cursor.execute("DELETE FROM monitoring_app_monitorsample")
        cursor.execute("DELETE FROM monitoring_app_trace")
        cursor.execute(
            """
            INSERT INTO monitoring_app_trace (source_id, client_id, time, received_at, release, origin, input,
                output, trace, ttft_ms, latency_ms, input_tokens, output_tokens, cost_usd, retries, refused,
                escalated, tool_calls, trace_steps, thumbs, feedback_score, feedback_comment, metadata)
            SELECT %s, 'f-' || g, %s::timestamptz + (g * %s) * interval '1 second', now(),
                'v' || (1 + least(3, floor(g * 4.0 / %s)))::int, 'api',
                '{"messages": [{"role": "user", "content": "Where is my order?"}]}', '"Order shipped."', '[]',
                150 + random() * 60, 600 + random() * 500, 300, 40, 0.0004, 0, random() < 0.03, false, 1, 1,
                CASE WHEN random() < 0.01 THEN 'down' ELSE '' END, NULL, '', '{"route": "orders"}'
            FROM generate_series(0, %s - 1) AS g
            """,
            [source.pk, start, step, stored, stored],
        )
        cursor.execute(
            """
            INSERT INTO monitoring_app_monitorsample (monitor_id, trace_id, time, release, failure_class,
                in_sample, status, attempts, error, created_at, graded_at, passed, review, review_note)
            SELECT %s, id, time, release, '', true, 'graded', 1, '', now(), now(), random() > 0.05, '', ''
            FROM monitoring_app_trace WHERE source_id = %s AND id %% 10 = 0
            """,
            [monitor.pk, source.pk],
        )
        cursor.execute(
            """
            INSERT INTO monitoring_app_tracegrade (sample_id, grader_id, score, passed, rationale, error,
                input_tokens, output_tokens, cost_usd, cached, created_at)
            SELECT s.id, g.grader_id, CASE WHEN s.passed THEN 1 ELSE 0 END, s.passed, '', '', 0, 0, 0, false,
                now()
            FROM monitoring_app_monitorsample s
            CROSS JOIN (SELECT grader_id FROM monitoring_app_monitor_graders WHERE monitor_id = %s) g
            """,
            [monitor.pk],
        )
        # As autovacuum would have by now: the ingestion part deleted rows, and fresh rows have no
        # visibility map yet.
        cursor.execute("VACUUM ANALYZE")
    return end


def best_ms(call: Any, repeat: int = 3) -> float:
    call()  # warm: plans cached, pages in memory
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


def queries(args: argparse.Namespace, world: dict[str, Any]) -> None:
    from django.db import connection

    from gates_app.production import production_verdict
    from monitoring_app import drift
    from monitoring_app.models import Alert, AlertRule, Monitor, WindowRollup

    end = fill(world, args.stored)
    monitor = Monitor.objects.get(pk=world["monitor"].pk)
    for name, metric, grader in [
        ("latency", "latency_p95_ms", None),
        ("refusals", "refusal_rate", None),
        ("staff codes", "pass_rate", monitor.graders.get(slug="no-staff-codes")),
    ]:
        AlertRule.objects.get_or_create(
            monitor=monitor, name=name, defaults={"metric": metric, "grader": grader}
        )
    now = end - dt.timedelta(minutes=30)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM monitoring_app_trace")
        total = cursor.fetchone()[0]
    window = drift.last_complete_window(monitor, now)

    def evaluate() -> None:
        drift.evaluate_monitor(monitor, now=now)
        Alert.objects.all().delete()  # each repetition evaluates afresh

    def cold_charts() -> None:
        WindowRollup.objects.all().delete()  # as after an invalidation: every window computed
        drift.charts(monitor, now=now)

    cold = best_ms(cold_charts)
    drift.evaluate_all(now=now)  # the periodic job: evaluates, and rolls the settled windows up
    timings = {
        "monitor page: charts (24 windows x 5 metrics)": best_ms(lambda: drift.charts(monitor, now=now)),
        "monitor page: window table (every metric)": best_ms(lambda: drift.window_table(monitor, window)),
        "drift evaluation (3 rules, 2 windows each)": best_ms(evaluate),
        "post-release verdict (2 rules)": best_ms(lambda: production_verdict(world["gate"], "v4", now=now)),
    }
    print(
        f"queries at {total:,} stored traces ({args.stored // 10:,} sampled, 3 grades each), "
        f"{database_label()}:"
    )
    for label, ms in timings.items():
        print(f"  {label:<48} {ms:7.1f} ms")
    print(f"  {'(charts with no rollups: all 24 windows computed)':<48} {cold:7.1f} ms")
    for label, ms in timings.items():
        print_ratio(f"{label} / 100 ms", ms / 100, "<= 1")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--posters", type=int, default=4, help="concurrent clients posting batches")
    parser.add_argument("--gunicorn-workers", type=int, default=3)
    parser.add_argument("--stored", type=int, default=1_000_000)
    parser.add_argument(
        "--unreported",
        type=float,
        default=0.5,
        help="share of traces reporting neither refused nor escalated (detected at ingestion)",
    )
    parser.add_argument(
        "--only", choices=["ingestion", "queries"], help="run one part (default: both, ingestion first)"
    )
    args = parser.parse_args()
    if not reachable(REDIS_URL, 6379):
        raise SystemExit(f"Redis is unreachable at {REDIS_URL}: online grading needs a worker.")
    with django_on_postgres(REDIS_URL) as _:
        flush_redis(REDIS_URL)
        try:
            world = setup()
            if args.only != "queries":
                ingestion(args, world, REDIS_URL)
            if args.only != "ingestion":
                queries(args, world)
        finally:
            flush_redis(REDIS_URL)


if __name__ == "__main__":
    main()
