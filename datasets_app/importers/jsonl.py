"""Evalgate's own JSONL: one case per line, with the case fields (what export_cases writes)."""

import json
from collections.abc import Iterator
from typing import Any

from datasets_app.importers.base import CASE_FIELDS, Batch, kind_of


def json_lines(text: str, batch: Batch) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; report lines that are not objects."""
    # Split on "\n" only: str.splitlines() would also split on U+2028, which JSON strings may
    # hold; a CR before the newline (a file saved on Windows) is JSON whitespace.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            batch.error(number, "json", f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(value, dict):
            batch.error(number, "json", f"expected a JSON object, got {kind_of(value)}")
            continue
        yield number, value


def read(text: str, batch: Batch) -> None:
    for line, obj in json_lines(text, batch):
        unknown = sorted(set(obj) - set(CASE_FIELDS))
        if unknown:
            batch.error(line, "fields", f"unknown field(s): {', '.join(unknown)}")
        batch.add(line, obj)
