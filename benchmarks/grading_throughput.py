"""Deterministic grading: a run of submitted outputs with 3 code graders, job path vs a plain loop.

The job path is the real one, in-process (REDIS_URL unset): parse_outputs validates the
submitted outputs, start_run writes them with the run and its chunks, and after commit each
grade_chunk job reads its cases and outputs back, grades them and writes its results in one
transaction; finalise_run then summarises the run. On a scratch PostgreSQL database
(SQLite, with a note, when PostgreSQL is unreachable).

The baseline is the least any implementation must do: a plain Python loop over the same
cases and outputs already in memory, calling the same grader kinds' grade() with the same
configs (through grade_code, which returns the Grade row as a dict), then the CaseResult rows and the
Grade rows written straight through the driver (the same tables, under a second Run row):
ids from the tables' sequences and COPY on PostgreSQL, sqlite3's executemany on SQLite. Not
the ORM's bulk_create: the baseline is the fastest honest way to store the same rows.

Each side runs --repeat times, alternating, and the best time of each is compared: other
load on the machine slows single runs, never the best one.

    .venv/bin/python benchmarks/grading_throughput.py [--cases 10000] [--chunk-size 1000] [--repeat 2]
"""

import argparse
import time
from typing import Any

from _setup import database_label, django_on_postgres, print_ratio

GRADERS = (("answer-exact", "exact_match"), ("answer-contains", "contains"), ("answer-format", "regex"))
PATTERNS = (r"^(Yes|No)\b", r"\b\d+ days\b", r"refund", r"^[A-Z]", r"policy \d+")
BATCH_SIZE = 1000


def case_data(i: int) -> dict[str, Any]:
    """Case i and the candidate's output for it; about 2 in 3 outputs pass each grader."""
    answer = f"No, refunds close after {30 + i % 60} days"
    return {
        "key": f"c{i}",
        "input": {"messages": [{"role": "user", "content": f"Can I get a refund? ({i})"}]},
        "expected": {
            "answer": answer,
            "contains": ["refund", f"{30 + i % 60} days"],
            "pattern": PATTERNS[i % 5],
        },
        "output": answer if i % 3 else f"Yes, policy {i} allows a refund",
        "metrics": {"latency_ms": 500 + i % 700},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument(
        "--chunk-size", type=int, default=None, help="default: EVALGATE_CODE_CHUNK_SIZE (1,000)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side; the best counts")
    args = parser.parse_args()
    with django_on_postgres():
        bench(args)


def driver_insert(results: list[dict[str, Any]], grades: list[list[dict[str, Any]]]) -> None:
    """The CaseResult rows and their Grade rows straight through the database driver, in one
    transaction: ids drawn from the tables' sequences, then COPY (PostgreSQL); sqlite3's
    executemany elsewhere. Each column's value is the row's, else the field's default (JSON
    encoded, auto_now times set), as the ORM would write it."""
    import json

    from django.db import connection, models
    from django.utils import timezone

    from grading_app.models import CaseResult, Grade

    now = timezone.now()

    def rows(model: Any, objs: list[dict[str, Any]]) -> tuple[str, list[str], list[list[Any]]]:
        plan = []
        for f in model._meta.concrete_fields:
            if f.primary_key:
                continue
            auto = getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False)
            plan.append((f.attname, f.get_default(), isinstance(f, models.JSONField), auto))

        def value(obj: dict[str, Any], name: str, default: Any, is_json: bool, auto: bool) -> Any:
            if auto:
                return now
            v = obj.get(name, default)
            return json.dumps(v) if is_json and v is not None else v

        values = [[obj["id"], *(value(obj, *p) for p in plan)] for obj in objs]
        columns = ["id", *(model._meta.get_field(name).column for name, *_ in plan)]
        return model._meta.db_table, columns, values

    flat = [g for gs in grades for g in gs]
    connection.ensure_connection()
    if connection.vendor == "postgresql":
        pg = connection.connection
        with pg.transaction(), pg.cursor() as cursor:
            for model, objs in ((CaseResult, results), (Grade, flat)):
                table = model._meta.db_table
                sequence = "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)"
                cursor.execute(sequence, [table, len(objs)])
                for obj, (pk,) in zip(objs, cursor.fetchall(), strict=True):
                    obj["id"] = pk
                if model is CaseResult:
                    link(results, grades)
            for model, objs in ((CaseResult, results), (Grade, flat)):
                table, columns, values = rows(model, objs)
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
        return
    raw = connection.connection
    with raw:
        for model, objs in ((CaseResult, results), (Grade, flat)):
            table = model._meta.db_table
            start = raw.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
            for offset, obj in enumerate(objs, start=1):
                obj["id"] = start + offset
            if model is CaseResult:
                link(results, grades)
            table, columns, values = rows(model, objs)
            marks = ", ".join(["?"] * len(columns))
            raw.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", values)


def link(results: list[dict[str, Any]], grades: list[list[dict[str, Any]]]) -> None:
    for result, result_grades in zip(results, grades, strict=True):
        for grade in result_grades:
            grade["case_result_id"] = result["id"]


def plain_loop(dataset: Any, cases: list[Any], data: list[dict[str, Any]]) -> float:
    from grading_app import graders
    from grading_app.execution import grade_code
    from grading_app.models import Run
    from grading_app.services import snapshot_graders

    snapshot = [(g, graders.get_kind(g["kind"])) for g in snapshot_graders()]
    run = Run.objects.create(dataset=dataset, candidate="baseline", total_cases=len(cases))
    started = time.perf_counter()
    results, grades = [], []
    for case, row in zip(cases, data, strict=True):
        item = graders.GradingInput(case_input=row["input"], expected=row["expected"], output=row["output"])
        results.append(
            {
                "run_id": run.pk,
                "case_id": case.pk,
                "case_revision": case.revision,
                "output": row["output"],
                "latency_ms": row["metrics"]["latency_ms"],
            }
        )
        grades.append([grade_code(kind, pinned, item) for pinned, kind in snapshot])
    driver_insert(results, grades)
    return time.perf_counter() - started


def job_path(
    dataset: Any, data: list[dict[str, Any]], chunk_size: int | None, candidate: str
) -> tuple[float, Any]:
    from grading_app.choices import RunStatus
    from grading_app.outputs import parse_outputs
    from grading_app.services import start_run

    raw = [{"case": row["key"], "output": row["output"], "metrics": row["metrics"]} for row in data]
    started = time.perf_counter()
    # start_run returns once its transaction commits, which runs the jobs in-process.
    run = start_run(dataset=dataset, candidate=candidate, outputs=parse_outputs(raw), chunk_size=chunk_size)
    elapsed = time.perf_counter() - started
    run.refresh_from_db()
    if run.status != RunStatus.SUCCEEDED:
        raise SystemExit(f"the run did not succeed: {run.status}: {run.error}")
    return elapsed, run


def bench(args: argparse.Namespace) -> None:
    from django.conf import settings

    from datasets_app import services as datasets
    from datasets_app.models import Case
    from grading_app.models import Grade
    from grading_app.services import save_grader

    failure_class = datasets.save_failure_class(slug="refunds", name="Refunds")
    dataset = datasets.save_dataset(slug="bench", name="Bench", owner=None)
    data = [case_data(i) for i in range(args.cases)]
    cases = Case.objects.bulk_create(
        Case(
            dataset=dataset,
            key=row["key"],
            tier="trusted",
            status="active",
            failure_class=failure_class,
            input=row["input"],
            expected=row["expected"],
        )
        for row in data
    )
    for slug, kind in GRADERS:
        save_grader(slug=slug, kind=kind)
    chunk_size = args.chunk_size  # None: the size the job path picks for a run without model calls
    print(
        f"deterministic grading: {args.cases:,} cases x {len(GRADERS)} code graders "
        f"on {database_label()}, chunks of {chunk_size or settings.EVALGATE_CODE_CHUNK_SIZE}, "
        f"best of {args.repeat}"
    )
    loop_times, job_times = [], []
    for attempt in range(args.repeat):
        loop_times.append(plain_loop(dataset, cases, data))
        elapsed, run = job_path(dataset, data, chunk_size, candidate=f"bench-{attempt}")
        job_times.append(elapsed)
    loop, job = min(loop_times), min(job_times)
    grades = Grade.objects.filter(case_result__run=run)
    print(
        f"  job path:                 {job:6.2f} s ({args.cases / job:,.0f} cases/s)  runs: {fmt(job_times)}"
    )
    loop_rate = args.cases / loop
    print(f"  plain loop + driver COPY: {loop:6.2f} s ({loop_rate:,.0f} cases/s)  runs: {fmt(loop_times)}")
    print(f"  last run: {grades.count():,} grades, {grades.filter(passed=True).count():,} passed")
    print_ratio("grading job path / plain loop", job / loop, "<= 3")


def fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


if __name__ == "__main__":
    main()
