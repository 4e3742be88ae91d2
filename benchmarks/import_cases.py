"""Import: N cases from a JSONL file, parsed, validated and written with one history row each.

The measured path is the real one: datasets_app.importers.parse_cases (decode, validate
every line) and datasets_app.services.import_cases (check the file against the database,
then bulk_create_with_history in one transaction). On a scratch PostgreSQL database
(SQLite, with a note, when PostgreSQL is unreachable).

The baseline is a plain Case.objects.bulk_create of the same cases (same field values,
batches of 1000, one transaction) into another dataset, without parsing, checks or
history rows: the least a bulk write of these rows can cost here.

    .venv/bin/python benchmarks/import_cases.py [--cases 100000]
"""

import argparse
import json
import time

from _setup import database_label, django_on_postgres, print_ratio

BATCH_SIZE = 1000


def jsonl(cases: int) -> bytes:
    """A file of `cases` realistic cases: a chat input, a reference answer, tags."""
    lines = (
        json.dumps(
            {
                "key": f"refund-{i:06d}",
                "tier": "monitoring",
                "failure_class": "refunds",
                "tags": ["refunds", f"locale-{i % 7}"],
                "input": {
                    "messages": [{"role": "user", "content": f"Can I get a refund after {i % 90} days?"}]
                },
                "expected": {"answer": "No" if i % 90 > 30 else "Yes", "contains": ["refund"]},
            }
        )
        for i in range(cases)
    )
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=100_000)
    args = parser.parse_args()
    with django_on_postgres():
        bench(args)


def bench(args: argparse.Namespace) -> None:
    from django.db import transaction

    from datasets_app import services as datasets
    from datasets_app.importers import parse_cases
    from datasets_app.models import Case
    from datasets_app.services.imports import imported_status

    failure_class = datasets.save_failure_class(slug="refunds", name="Refunds")
    imported = datasets.save_dataset(slug="imported", name="Imported", owner=None)
    plain = datasets.save_dataset(slug="plain", name="Plain", owner=None)
    data = jsonl(args.cases)
    print(f"import: {args.cases:,} cases from JSONL ({len(data) / 1e6:.1f} MB) on {database_label()}")

    started = time.perf_counter()
    specs = parse_cases(data, "jsonl")
    parsed = time.perf_counter()
    datasets.import_cases(imported, specs, actor=None)
    written = time.perf_counter()
    parse_s, import_s = parsed - started, written - parsed

    started = time.perf_counter()
    with transaction.atomic():
        Case.objects.bulk_create(
            (
                Case(
                    dataset=plain,
                    key=s.key,
                    tier=s.tier,
                    status=imported_status(s),
                    failure_class=failure_class,
                    risk=s.risk,
                    pinned=s.pinned,
                    tags=s.tags,
                    input=s.input,
                    expected=s.expected,
                    source="imported",
                )
                for s in specs
            ),
            batch_size=BATCH_SIZE,
        )
    baseline = time.perf_counter() - started

    history = Case.history.filter(dataset_id=imported.pk).count()
    total = parse_s + import_s
    print(f"  parse_cases:  {parse_s:6.2f} s ({args.cases / parse_s:,.0f} cases/s)")
    print(
        f"  import_cases: {import_s:6.2f} s ({args.cases / import_s:,.0f} cases/s), {history:,} history rows"
    )
    print(f"  together:     {total:6.2f} s ({args.cases / total:,.0f} cases/s)")
    print(f"  plain bulk_create, no history: {baseline:.2f} s ({args.cases / baseline:,.0f} cases/s)")
    print_ratio("import_cases / plain bulk_create", import_s / baseline)
    print_ratio("parse + import / plain bulk_create", total / baseline)


if __name__ == "__main__":
    main()
