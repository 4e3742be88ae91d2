"""Evalgate's own CSV: a header row of case fields, JSON cells for input, expected and tags."""

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from datasets_app.importers.base import CASE_FIELDS, Batch

CSV_STAND_INS = {"question", "prompt", "answer"}  # plain-text columns for input and expected.answer
# A cell may be as large as the file holding it: exports write whatever a case holds, and the
# request size limit (EVALGATE_MAX_REQUEST_MB) is what bounds an upload. The default limit
# of the csv module (128 KiB) refused cells that an export had written.
csv.field_size_limit(2**31 - 1)


def csv_rows(text: str, batch: Batch) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, cells) of each non-blank row; bad quoting is reported by line."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    end = 0  # the last physical line read: quoted cells may span lines
    while True:
        start = end + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            hint = "a quoted cell is never closed" if "end of data" in str(exc) else str(exc)
            batch.error(start, "csv", f"bad CSV quoting: {hint}")
            if end == 0:
                return
            end = reader.line_num
            continue
        end = reader.line_num
        if any(cell.strip() for cell in row):
            yield start, row


def csv_records(text: str, batch: Batch) -> Iterator[tuple[int, list[str], dict[str, str]]]:
    """(line, header, cells by column) of each data row; the header is the first row."""
    header: list[str] | None = None
    for line, row in csv_rows(text, batch):
        if header is None:
            header = [cell.strip() for cell in row]
            yield line, header, {}
            repeated = sorted({name for name in header if header.count(name) > 1})
            if repeated:
                batch.error(line, "header", f"repeated column(s): {', '.join(repeated)}")
                return
        elif len(row) != len(header):
            batch.error(line, "csv", f"expected {len(header)} cells, found {len(row)}")
        else:
            yield line, header, dict(zip(header, row, strict=True))


def read(text: str, batch: Batch) -> None:
    for line, header, cells in csv_records(text, batch):
        if not cells:
            if not _header_ok(header, line, batch):
                return
            continue
        batch.add(line, _case(cells, line, batch))


def _header_ok(header: list[str], line: int, batch: Batch) -> bool:
    before = len(batch.errors)
    unknown = [name for name in header if name not in CASE_FIELDS and name not in CSV_STAND_INS]
    if unknown:
        batch.error(line, "header", f"unknown column(s): {', '.join(unknown)}")
    if "key" not in header:
        batch.error(line, "header", "missing column: key")
    inputs = [name for name in header if name in ("input", "question", "prompt")]
    if len(inputs) != 1:
        batch.error(line, "header", "give exactly one of the columns input, question, prompt")
    return len(batch.errors) == before


def _case(cells: dict[str, str], line: int, batch: Batch) -> dict[str, Any]:
    """Turn one row's cells into case fields; an empty cell means "not given"."""
    raw: dict[str, Any] = {"key": cells["key"] or None}
    for name in ("tier", "risk", "status", "failure_class"):
        if cells.get(name, "").strip():
            raw[name] = cells[name].strip()
    pinned = cells.get("pinned", "").strip()
    if pinned:
        raw["pinned"] = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(
            pinned.casefold(), pinned
        )
    tags = cells.get("tags", "").strip()
    if tags.startswith("["):
        raw["tags"] = json_cell(tags, "tags", line, batch)
    elif tags:
        raw["tags"] = [tag.strip() for tag in tags.split(";") if tag.strip()]
    for name in ("input", "expected"):
        if cells.get(name, "").strip():
            raw[name] = json_cell(cells[name], name, line, batch)
    question = cells.get("question") or cells.get("prompt")
    if question:
        raw["input"] = {"messages": [{"role": "user", "content": question}]}
    if cells.get("answer"):
        expected = raw.setdefault("expected", {})
        if isinstance(expected, dict) and "answer" in expected:
            batch.error(line, "answer", "the answer column and expected.answer are both given")
        elif isinstance(expected, dict):
            expected["answer"] = cells["answer"]
    return raw


def json_cell(cell: str, field: str, line: int, batch: Batch) -> Any:
    try:
        return json.loads(cell)
    except json.JSONDecodeError as exc:
        batch.error(line, field, f"invalid JSON in the {field} cell: {exc.msg} (column {exc.colno})")
        return None
