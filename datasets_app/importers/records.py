"""Rows of a dataset file, whatever its shape: JSONL lines, a JSON array, or CSV rows (first
row the header) -> (line, record), for the formats whose records are flat objects."""

from collections.abc import Iterator
from typing import Any

from datasets_app.importers.base import Batch, kind_of
from datasets_app.importers.csv_cases import csv_records
from datasets_app.importers.documents import load_document
from datasets_app.importers.jsonl import json_lines


def records(text: str, batch: Batch) -> Iterator[tuple[int, dict[str, Any]]]:
    stripped = text.lstrip()
    if stripped.startswith("["):
        document = load_document(text, batch)
        if document is None:
            return
        for index, record in enumerate(document.value):
            if isinstance(record, dict):
                yield document.line(index), record
            else:
                batch.error(document.line(index), "record", f"a record is an object, not {kind_of(record)}")
    elif stripped.startswith("{"):
        yield from json_lines(text, batch)
    else:
        for line, _header, cells in csv_records(text, batch):
            if cells:
                yield line, cells


def user_turn(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}
