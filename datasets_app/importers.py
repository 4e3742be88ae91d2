"""Parse and validate case files (jsonl, csv, promptfoo, openai-evals) into plain data; no database work."""

import csv
import dataclasses
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.utils.text import slugify

from datasets_app.choices import CaseStatus, Risk, Tier

CASE_FIELDS = ("key", "tier", "failure_class", "risk", "pinned", "tags", "input", "expected", "status")
MAX_KEY_LENGTH = 200  # Case.key max_length
SLUG = re.compile(r"[-a-zA-Z0-9_]{1,64}")  # FailureClass.slug: a SlugField of 64
CSV_STAND_INS = {"question", "prompt", "answer"}  # plain-text columns for input and expected.answer
PROMPT_VARS = ("prompt", "question", "query", "input")
# `options` only tunes how promptfoo calls providers; the other test fields change what a
# test means (threshold, scoring function, provider), so they are refused rather than dropped.
PROMPTFOO_TEST_FIELDS = {"description", "vars", "assert", "metadata", "options"}
PROMPTFOO_METADATA = ("key", "failure_class", "tier", "risk", "pinned", "tags")
# Our contains graders ignore case by default, so the i- variants map onto the same keys.
SUBSTRING_ASSERTS = dict.fromkeys(("contains", "icontains", "contains-all", "icontains-all"), "contains")
SUBSTRING_ASSERTS |= dict.fromkeys(("not-contains", "not-icontains"), "not_contains")
JSON_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}

# A choices class computes .values on every access (an enum walk): once, here, for every line.
TIERS, RISKS, STATUSES = tuple(Tier.values), tuple(Risk.values), tuple(CaseStatus.values)


@dataclasses.dataclass(frozen=True)
class CaseSpec:
    """One validated case as a file describes it; the caller resolves failure_class and writes."""

    key: str
    tier: str
    failure_class: str | None
    risk: str
    pinned: bool
    tags: list[str]
    input: dict[str, Any]
    expected: dict[str, Any]
    status: str | None
    line: int

    def to_dict(self) -> dict[str, Any]:
        """The case keys without `line`: what export_jsonl and export_csv take."""
        data = dataclasses.asdict(self)
        del data["line"]
        return data

    def refs(self) -> "CaseRefs":
        """What this case names that only the database can check."""
        return CaseRefs(self.line, self.key, self.failure_class, self.tier, self.status)


@dataclasses.dataclass(frozen=True)
class CaseRefs:
    """The fields of a line that the database decides on (its key may exist, its failure class
    may not, its status may need a reviewer). None: not given, or itself in error on that line."""

    line: int
    key: str | None
    failure_class: str | None
    tier: str | None
    status: str | None


@dataclasses.dataclass(frozen=True)
class LineError:
    line: int
    field: str
    message: str
    unit: str = "line"  # promptfoo errors point at a test ("test 3"), not at a file line

    def __str__(self) -> str:
        return f"{self.unit} {self.line}: {self.field}: {self.message}"


class ImportFailed(Exception):
    """The file has at least one bad line; `errors` lists every one of them."""

    def __init__(self, errors: list[LineError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(error) for error in errors))


@dataclasses.dataclass(frozen=True)
class ParsedCases:
    """A whole file read: the good lines as specs, and every problem of the bad ones.

    `rejected` keeps what each bad line names (key, failure class, ...), so the import
    service can report its database conflicts in the same pass as its own errors.
    """

    specs: list[CaseSpec] = dataclasses.field(default_factory=list)
    errors: list[LineError] = dataclasses.field(default_factory=list)
    rejected: list[CaseRefs] = dataclasses.field(default_factory=list)
    unit: str = "line"  # what the cases' numbers count: file lines, or promptfoo tests


@dataclasses.dataclass
class _Batch:
    """Collects the specs and the errors of one file, so every bad line is reported at once."""

    default_tier: str
    input_field: str
    ideal_field: str
    validate_content: Callable[[Any, Any, Any], None]
    unit: str = "line"
    specs: list[CaseSpec] = dataclasses.field(default_factory=list)
    errors: list[LineError] = dataclasses.field(default_factory=list)
    rejected: list[CaseRefs] = dataclasses.field(default_factory=list)
    _flagged: dict[int, set[str]] = dataclasses.field(
        default_factory=dict
    )  # fields already in error, by line
    _first_line: dict[str, int] = dataclasses.field(default_factory=dict)  # where each key was first used

    def error(self, line: int, field: str, message: str, *, unit: str | None = None) -> None:
        self.errors.append(LineError(line, field, message, unit or self.unit))
        self._flagged.setdefault(line, set()).add(field)

    def add(self, line: int, raw: dict[str, Any] | None) -> None:
        """Validate one case given as a dict of case fields (absent or None: the default)."""
        if raw is None:
            return
        before = len(self.errors)
        key = self._key(line, raw.get("key"))
        tier = self._choice(line, "tier", raw.get("tier"), TIERS, self.default_tier)
        risk = self._choice(line, "risk", raw.get("risk"), RISKS, Risk.NORMAL.value)
        status = self._choice(line, "status", raw.get("status"), STATUSES, None)
        pinned = False if raw.get("pinned") is None else raw["pinned"]
        if not isinstance(pinned, bool):
            self.error(line, "pinned", f"pinned must be true or false, not {pinned!r}")
        failure_class = raw.get("failure_class")
        if failure_class is not None and not (
            isinstance(failure_class, str) and SLUG.fullmatch(failure_class)
        ):
            self.error(line, "failure_class", f"{failure_class!r} is not a failure class slug")
        input_value = raw.get("input")
        if input_value is None and "input" not in self._flagged.get(line, ()):
            self.error(line, "input", "missing input")
        expected = {} if raw.get("expected") is None else raw["expected"]
        tags = [] if raw.get("tags") is None else raw["tags"]
        try:
            self.validate_content(input_value, expected, tags)
        except ValidationError as exc:
            # A field already reported on this line (say, invalid JSON) is not reported twice.
            flagged = self._flagged.get(line, set())
            for field, messages in exc.message_dict.items():
                for message in messages if field not in flagged else []:
                    self.error(line, field, message)
        if len(self.errors) == before:
            self.specs.append(
                CaseSpec(key, tier, failure_class, risk, pinned, tags, input_value, expected, status, line)
            )
            return
        # Keep what the bad line names, minus the fields in error, so its database conflicts
        # (a taken key, say) are reported now rather than after the user fixes this error.
        flagged = self._flagged.get(line, set())

        def unless_flagged(field: str, value: Any) -> Any:
            return None if field in flagged else value

        self.rejected.append(
            CaseRefs(
                line,
                key=unless_flagged("key", key),
                failure_class=unless_flagged("failure_class", failure_class),
                tier=unless_flagged("tier", tier),
                status=unless_flagged("status", status),
            )
        )

    def _key(self, line: int, key: Any) -> str:
        if key is None:
            self.error(line, "key", "missing key")
        elif not isinstance(key, str) or not key.strip():
            self.error(line, "key", f"key must be a non-empty string, not {key!r}")
        elif len(key) > MAX_KEY_LENGTH:
            self.error(line, "key", f"key is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}")
        elif key != key.strip():
            # Submitted outputs match on the key, so invisible whitespace would never match.
            self.error(line, "key", f"key {key!r} starts or ends with whitespace")
        elif key in self._first_line:
            first = self._first_line[key]
            self.error(line, "key", f"duplicate key {key!r}: first used on {self.unit} {first}")
        else:
            self._first_line[key] = line
        return key

    def _choice(
        self, line: int, field: str, value: Any, allowed: tuple[str, ...], default: str | None
    ) -> Any:
        if value is None:
            return default
        if value not in allowed:
            self.error(line, field, f"{value!r} is not a valid {field}; use one of: {', '.join(allowed)}")
        return value


def read_cases(
    data: bytes,
    fmt: str,
    *,
    input_field: str = "input",
    ideal_field: str = "ideal",
    default_tier: str = Tier.MONITORING,
) -> ParsedCases:
    """Parse a whole file into its good lines and the problems of every bad one; never raises
    for bad content (only for an unknown format or default tier, which are the caller's bugs)."""
    if fmt not in PARSERS:
        raise ValueError(f"unknown format {fmt!r}; use one of: {', '.join(PARSERS)}")
    if default_tier not in Tier.values:
        raise ValueError(f"unknown default tier {default_tier!r}")
    try:
        text = data.decode("utf-8-sig")  # spreadsheets often prepend a byte-order mark
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start]
        return ParsedCases(
            errors=[LineError(line, "encoding", f"byte 0x{byte:02x} is not UTF-8; save the file as UTF-8")]
        )
    # Imported here, not at the top: the import service in datasets_app.services imports this module.
    from datasets_app.services import validate_case_content

    batch = _Batch(str(default_tier), input_field, ideal_field, validate_case_content)  # plain str, not enum
    PARSERS[fmt](text, batch)
    if not batch.errors and not batch.specs:
        batch.error(1, "file", "the file has no cases", unit="line")
    return ParsedCases(batch.specs, batch.errors, batch.rejected, batch.unit)


def parse_cases(
    data: bytes,
    fmt: str,
    *,
    input_field: str = "input",
    ideal_field: str = "ideal",
    default_tier: str = Tier.MONITORING,
) -> list[CaseSpec]:
    """Parse a whole file into validated specs, or raise ImportFailed listing every bad line.

    Only the file's own errors: for those and the database conflicts together, pass
    read_cases()'s result to the import service instead.
    """
    parsed = read_cases(
        data, fmt, input_field=input_field, ideal_field=ideal_field, default_tier=default_tier
    )
    if parsed.errors:
        raise ImportFailed(parsed.errors)
    return parsed.specs


def _kind(value: Any) -> str:
    return JSON_KINDS.get(type(value), "a number")


def _json_lines(text: str, batch: _Batch) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; report lines that are not objects."""
    # Split on "\n" only: str.splitlines() would also split on U+2028, which JSON strings may hold.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            batch.error(number, "json", f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(value, dict):
            batch.error(number, "json", f"expected a JSON object, got {_kind(value)}")
            continue
        yield number, value


def _parse_jsonl(text: str, batch: _Batch) -> None:
    for line, obj in _json_lines(text, batch):
        unknown = sorted(set(obj) - set(CASE_FIELDS))
        if unknown:
            batch.error(line, "fields", f"unknown field(s): {', '.join(unknown)}")
        batch.add(line, obj)


def _parse_csv(text: str, batch: _Batch) -> None:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
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
            if header is None:
                return
            end = reader.line_num
            continue
        end = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip() for cell in row]
            if not _csv_header_ok(header, start, batch):
                return
        elif len(row) != len(header):
            batch.error(start, "csv", f"expected {len(header)} cells, found {len(row)}")
        else:
            batch.add(start, _csv_case(dict(zip(header, row, strict=True)), start, batch))


def _csv_header_ok(header: list[str], line: int, batch: _Batch) -> bool:
    before = len(batch.errors)
    unknown = [name for name in header if name not in CASE_FIELDS and name not in CSV_STAND_INS]
    if unknown:
        batch.error(line, "header", f"unknown column(s): {', '.join(unknown)}")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        batch.error(line, "header", f"repeated column(s): {', '.join(repeated)}")
    if "key" not in header:
        batch.error(line, "header", "missing column: key")
    inputs = [name for name in header if name in ("input", "question", "prompt")]
    if len(inputs) != 1:
        batch.error(line, "header", "give exactly one of the columns input, question, prompt")
    return len(batch.errors) == before


def _csv_case(cells: dict[str, str], line: int, batch: _Batch) -> dict[str, Any]:
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
        raw["tags"] = _json_cell(tags, "tags", line, batch)
    elif tags:
        raw["tags"] = [tag.strip() for tag in tags.split(";") if tag.strip()]
    for name in ("input", "expected"):
        if cells.get(name, "").strip():
            raw[name] = _json_cell(cells[name], name, line, batch)
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


def _json_cell(cell: str, field: str, line: int, batch: _Batch) -> Any:
    try:
        return json.loads(cell)
    except json.JSONDecodeError as exc:
        batch.error(line, field, f"invalid JSON in the {field} cell: {exc.msg} (column {exc.colno})")
        return None


def _parse_promptfoo(text: str, batch: _Batch) -> None:
    document = _load_document(text, batch)
    if document is None or batch.errors:
        return
    defaults: Any = {}
    if isinstance(document, dict):
        tests, defaults = document.get("tests"), document.get("defaultTest") or {}
        if not isinstance(tests, list):
            batch.error(1, "tests", "`tests` must be a list of tests (file references are not followed)")
        if not isinstance(defaults, dict):
            batch.error(1, "defaultTest", "`defaultTest` must be a mapping")
        if batch.errors:
            return
    elif isinstance(document, list):
        tests = document
    else:
        shape = f"a list of tests or a mapping with `tests`, not {_kind(document)}"
        batch.error(1, "file", f"a promptfoo file must be {shape}")
        return
    batch.unit = "test"
    for index, test in enumerate(tests, start=1):
        batch.add(index, _promptfoo_case(index, test, defaults, batch))


def _load_document(text: str, batch: _Batch) -> Any:
    """The parsed file, or None when empty or broken (reported with its line)."""
    # A file that opens like JSON is read as JSON: YAML would accept `{"vars": }` as null.
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            batch.error(exc.lineno, "json", f"invalid JSON: {exc.msg} (column {exc.colno})")
            return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        batch.error(mark.line + 1 if mark else 1, "yaml", f"invalid YAML: {problem}")
        return None


def _promptfoo_case(index: int, test: Any, defaults: dict[str, Any], batch: _Batch) -> dict[str, Any] | None:
    if not isinstance(test, dict):
        batch.error(index, "test", f"a test must be a mapping, not {_kind(test)}")
        return None
    unknown = sorted(set(test) - PROMPTFOO_TEST_FIELDS)
    if unknown:
        batch.error(index, "test", f"unsupported test field(s): {', '.join(unknown)}")
    parts = {}
    for name in ("vars", "metadata"):
        default, own = defaults.get(name) or {}, test.get(name) or {}
        if not isinstance(default, dict) or not isinstance(own, dict):
            batch.error(index, name, f"{name} must be a mapping")
            return None
        parts[name] = {**default, **own}  # like promptfoo: the test's own values win
    variables, metadata = parts["vars"], parts["metadata"]
    for name, value in variables.items():
        if isinstance(value, str) and value.startswith("file://"):
            batch.error(index, "vars", f"var {name!r} refers to a file ({value}); inline its content")
    input_value: dict[str, Any] = {"vars": variables}
    prompt = next((variables[n] for n in PROMPT_VARS if isinstance(variables.get(n), str)), None)
    if prompt is not None:
        input_value["messages"] = [{"role": "user", "content": prompt}]
    asserts = []
    for source in (defaults, test):
        if not isinstance(source.get("assert") or [], list):
            batch.error(index, "assert", "assert must be a list of assertions")
        else:
            asserts.extend(source.get("assert") or [])
    raw = {name: metadata[name] for name in PROMPTFOO_METADATA if name in metadata}
    raw["input"] = input_value
    raw["expected"] = _promptfoo_expected(index, asserts, batch)
    if "key" not in raw:
        description = test.get("description")
        slug = slugify(description)[:MAX_KEY_LENGTH].strip("-") if isinstance(description, str) else ""
        raw["key"] = slug or f"test-{index}"
    return raw


def _promptfoo_expected(index: int, asserts: list[Any], batch: _Batch) -> dict[str, Any]:
    """Map promptfoo assertions onto the conventional `expected` keys our graders read."""
    expected: dict[str, Any] = {}
    for number, check in enumerate(asserts, start=1):
        kind = check.get("type") if isinstance(check, dict) else None
        if not isinstance(kind, str):
            batch.error(index, "assert", f"assert {number} must be a mapping with a type")
            continue
        value = check.get("value")
        where = f"assert {number} ({kind})"
        if kind in SUBSTRING_ASSERTS:
            values = value if kind.endswith("-all") else [value]
            if not (isinstance(values, list) and values and all(isinstance(v, str) for v in values)):
                batch.error(index, "assert", f"{where}: value must be a string (a list of strings for -all)")
                continue
            expected.setdefault(SUBSTRING_ASSERTS[kind], []).extend(values)
        elif kind in ("equals", "regex"):
            target = "answer" if kind == "equals" else "pattern"
            if target in expected:
                batch.error(index, "assert", f"{where}: only one {kind} assertion per test")
            elif value is None or (kind == "regex" and not isinstance(value, str)):
                batch.error(index, "assert", f"{where}: a value is required")
            elif kind == "regex" and (problem := _regex_problem(value)):
                batch.error(
                    index, "assert", f"{where}: {value!r} is not a valid regular expression: {problem}"
                )
            else:
                expected[target] = value
        elif kind in ("is-json", "contains-json"):
            # The json_schema grader reads expected.schema; {} accepts any JSON at all.
            expected["schema"] = value if isinstance(value, dict) else {}
        else:
            supported = ", ".join(["equals", "regex", "is-json", "contains-json", *SUBSTRING_ASSERTS])
            batch.error(
                index, "assert", f"unsupported assert type {kind!r} (assert {number}); use: {supported}"
            )
    return expected


def _regex_problem(pattern: str) -> str | None:
    try:
        re.compile(pattern)
    except re.error as exc:
        return str(exc)
    return None


def _parse_openai_evals(text: str, batch: _Batch) -> None:
    for line, obj in _json_lines(text, batch):
        batch.add(line, _openai_case(line, obj, batch))


def _openai_case(line: int, obj: dict[str, Any], batch: _Batch) -> dict[str, Any] | None:
    """A registry sample ({"input": [...], "ideal": ...}) or a hosted data item ({"item": {...}})."""
    if "item" in obj:
        # `sample` holds a pre-generated model output, which is not part of the case.
        unknown = sorted(set(obj) - {"item", "sample"})
        if unknown:
            batch.error(line, "fields", f"unknown field(s) beside item: {', '.join(unknown)}")
        item, input_key, ideal_key = obj["item"], batch.input_field, batch.ideal_field
        if not isinstance(item, dict):
            batch.error(line, "item", f"item must be an object, not {_kind(item)}")
            return None
    else:
        item, input_key, ideal_key = obj, "input", "ideal"
    ident = item.get("id", item.get("key"))
    ident = str(ident) if isinstance(ident, int) else ident  # registry ids are often numbers
    raw: dict[str, Any] = {"key": f"line-{line}" if ident is None else ident}
    prompt = item.get(input_key)
    if isinstance(prompt, str):
        raw["input"] = {"messages": [{"role": "user", "content": prompt}]}
    elif isinstance(prompt, list):
        raw["input"] = {"messages": prompt}
    else:
        problem = "is missing" if prompt is None else f"must be a string or messages, not {_kind(prompt)}"
        batch.error(line, "input", f"{input_key!r} {problem}")
        return None
    variables = {k: v for k, v in item.items() if k not in (input_key, ideal_key, "id", "key")}
    if variables:
        raw["input"]["vars"] = variables
    if item.get(ideal_key) is not None:
        raw["expected"] = {"answer": item[ideal_key]}
    return raw


PARSERS: dict[str, Callable[[str, _Batch], None]] = {
    "jsonl": _parse_jsonl,
    "csv": _parse_csv,
    "promptfoo": _parse_promptfoo,
    "openai-evals": _parse_openai_evals,
}


def _export_fields(case: dict[str, Any]) -> dict[str, Any]:
    """The case keys present, in a fixed order; an absent or None status is left out."""
    fields = {name: case[name] for name in CASE_FIELDS if name in case}
    if fields.get("status") is None:
        fields.pop("status", None)
    return fields


def export_jsonl(cases: Iterable[dict[str, Any]]) -> str:
    """One JSON object per case, in the shape parse_cases(fmt="jsonl") reads back."""
    return "".join(json.dumps(_export_fields(case), ensure_ascii=False) + "\n" for case in cases)


def export_csv(cases: Iterable[dict[str, Any]]) -> str:
    """A header row and one row per case; tags, input and expected are JSON cells."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CASE_FIELDS)
    for case in cases:
        fields = _export_fields(case)
        writer.writerow([_csv_cell(name, fields.get(name)) for name in CASE_FIELDS])
    return out.getvalue()


def _csv_cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name == "pinned":
        return "true" if value else "false"
    # JSON even for tags: a tag may itself contain a semicolon.
    return json.dumps(value, ensure_ascii=False) if name in ("tags", "input", "expected") else str(value)
