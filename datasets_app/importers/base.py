"""What every importer produces: an import plan (cases, the graders, rubric drafts and gate
rules they need, and what could not be carried), and the batch that collects it line by line."""

import contextlib
import dataclasses
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError

from datasets_app.choices import CaseStatus, Risk, Tier

CASE_FIELDS = ("key", "tier", "failure_class", "risk", "pinned", "tags", "input", "expected", "status")
MAX_KEY_LENGTH = 200  # Case.key max_length
SLUG = re.compile(r"[-a-zA-Z0-9_]{1,64}")  # FailureClass.slug: a SlugField of 64
JSON_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}

# A choices class computes .values on every access (an enum walk): once, here, for every line.
TIERS, RISKS, STATUSES = tuple(Tier.values), tuple(Risk.values), tuple(CaseStatus.values)


def kind_of(value: Any) -> str:
    """How an error names a JSON value's type."""
    return JSON_KINDS.get(type(value), "a number")


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
    unit: str = "line"  # promptfoo errors may point at a test ("test 3") where no line is known
    file: str = ""  # set when an import reads several files (promptfoo's file:// tests)

    def __str__(self) -> str:
        if not self.unit:  # a problem of the whole import (a grader it needs, say), not of a line
            return f"{self.field}: {self.message}"
        where = f"{self.file} " if self.file else ""
        return f"{where}{self.unit} {self.line}: {self.field}: {self.message}"


@dataclasses.dataclass(frozen=True)
class Dropped:
    """A construct of the source that the import does not carry, and why."""

    file: str
    line: int
    construct: str
    reason: str
    unit: str = "line"

    def __str__(self) -> str:
        where = f"{self.file} " if self.file else ""
        return f"{where}{self.unit} {self.line}: {self.construct}: {self.reason}"

    def as_error(self) -> LineError:
        return LineError(self.line, self.construct, f"not carried: {self.reason}", self.unit, self.file)


@dataclasses.dataclass(frozen=True)
class GraderSpec:
    """A grader the imported cases need: reused when an active one has the same kind and config."""

    slug: str
    kind: str
    config: dict[str, Any]
    rubric: str | None = None  # judge kinds: the slug of a RubricSpec of the same plan


@dataclasses.dataclass(frozen=True)
class RubricSpec:
    """A judge rubric the cases need; it arrives as a draft version waiting for its owner."""

    slug: str
    name: str
    criteria: str
    pass_threshold: float = 0.0
    scale: str = "0-1"


@dataclasses.dataclass(frozen=True)
class RuleSpec:
    """A gate rule a construct becomes (promptfoo's latency and cost assertions)."""

    name: str
    metric: str
    threshold: float
    scope: dict[str, Any]
    severity: str = "block"


class ImportFailed(Exception):
    """The file has at least one bad line; `errors` lists every one of them."""

    def __init__(self, errors: list[LineError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(error) for error in errors))


@dataclasses.dataclass(frozen=True)
class ImportPlan:
    """A whole import read, as plain data: the good cases, every problem of the bad ones, the
    graders, rubric drafts and gate rules the cases need, and what the source held that the
    import cannot carry. A service applies it in one transaction (datasets_app.services).

    `rejected` keeps what each bad line names (key, failure class, ...), so the import
    service can report its database conflicts in the same pass as its own errors.
    """

    specs: list[CaseSpec] = dataclasses.field(default_factory=list)
    errors: list[LineError] = dataclasses.field(default_factory=list)
    rejected: list[CaseRefs] = dataclasses.field(default_factory=list)
    unit: str = "line"  # what the cases' numbers count: file lines, or promptfoo tests
    graders: list[GraderSpec] = dataclasses.field(default_factory=list)
    rubrics: list[RubricSpec] = dataclasses.field(default_factory=list)
    rules: list[RuleSpec] = dataclasses.field(default_factory=list)
    dropped: list[Dropped] = dataclasses.field(default_factory=list)
    source: str = ""  # the format and file, for the history and the audit event


@dataclasses.dataclass(frozen=True)
class ReadOptions:
    """How to read a file: field mapping, the default tier, and where its references live."""

    input_field: str | None = None  # the item field that holds the input (every line shape)
    ideal_field: str | None = None  # the item field that holds the reference answer
    default_tier: str = Tier.MONITORING
    base_dir: Path | None = None  # the file's directory: None (an upload) follows no reference
    file_name: str = ""
    eval_name: str | None = None  # OpenAI Evals registry: which eval of the YAML
    items: Path | None = None  # OpenAI Evals API: the items file of an eval definition
    eval_class: str | None = None  # OpenAI Evals samples read alone: the class that grades them
    reference_as: str | None = None  # datasets without checks: the check their reference answer is
    persona: str | None = None  # DeepEval conversational goldens: the rubric that simulates their user


@dataclasses.dataclass
class Batch:
    """Collects the specs, errors and needs of one import, so every bad line is reported at once."""

    options: ReadOptions
    validate_content: Callable[[Any, Any, Any], None]
    unit: str = "line"
    file: str = ""  # the file being read now, named in errors when the import reads several
    specs: list[CaseSpec] = dataclasses.field(default_factory=list)
    errors: list[LineError] = dataclasses.field(default_factory=list)
    rejected: list[CaseRefs] = dataclasses.field(default_factory=list)
    graders: dict[str, GraderSpec] = dataclasses.field(default_factory=dict)
    rubrics: dict[str, RubricSpec] = dataclasses.field(default_factory=dict)
    rules: dict[str, RuleSpec] = dataclasses.field(default_factory=dict)
    dropped: list[Dropped] = dataclasses.field(default_factory=list)
    _flagged: dict[tuple[str, int], set[str]] = dataclasses.field(default_factory=dict)
    _first_line: dict[str, tuple[str, int]] = dataclasses.field(default_factory=dict)

    def error(self, line: int, field: str, message: str, *, unit: str | None = None) -> None:
        error = LineError(line, field, message, unit or self.unit, self.file)
        # A defaultTest's problem is met once per test it applies to, and reported once.
        if error not in self.errors:
            self.errors.append(error)
        self._flagged.setdefault((self.file, line), set()).add(field)

    def drop(self, line: int, construct: str, reason: str) -> None:
        """Record a construct the import cannot carry (an error unless the user allows loss)."""
        dropped = Dropped(self.file, line, construct, reason, self.unit)
        if dropped not in self.dropped:
            self.dropped.append(dropped)

    @contextlib.contextmanager
    def in_file(self, name: str, unit: str = "line") -> Iterator[None]:
        """Errors and drops inside the block name ``name`` (a referenced file) and ``unit``."""
        before = (self.file, self.unit)
        self.file, self.unit = name, unit
        try:
            yield
        finally:
            self.file, self.unit = before

    def need_grader(self, spec: GraderSpec) -> None:
        self.graders.setdefault(spec.slug, spec)

    def need_rubric(self, spec: RubricSpec) -> None:
        self.rubrics.setdefault(spec.slug, spec)

    def need_rule(self, spec: RuleSpec) -> None:
        self.rules.setdefault(spec.name, spec)

    def add(self, line: int, raw: dict[str, Any] | None) -> None:
        """Validate one case given as a dict of case fields (absent or None: the default)."""
        if raw is None:
            return
        before = len(self.errors)
        key = self._key(line, raw.get("key"))
        tier = self._choice(line, "tier", raw.get("tier"), TIERS, str(self.options.default_tier))
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
        flagged = self._flagged.get((self.file, line), set())
        if input_value is None and "input" not in flagged:
            self.error(line, "input", "missing input")
        expected = {} if raw.get("expected") is None else raw["expected"]
        tags = [] if raw.get("tags") is None else raw["tags"]
        try:
            self.validate_content(input_value, expected, tags)
        except ValidationError as exc:
            # A field already reported on this line (say, invalid JSON) is not reported twice.
            flagged = self._flagged.get((self.file, line), set())
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
        flagged = self._flagged.get((self.file, line), set())

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
            file, first = self._first_line[key]
            where = f"{file} {self.unit}" if file and file != self.file else self.unit
            self.error(line, "key", f"duplicate key {key!r}: first used on {where} {first}")
        else:
            self._first_line[key] = (self.file, line)
        return key

    def _choice(
        self, line: int, field: str, value: Any, allowed: tuple[str, ...], default: str | None
    ) -> Any:
        if value is None:
            return default
        if value not in allowed:
            self.error(line, field, f"{value!r} is not a valid {field}; use one of: {', '.join(allowed)}")
        return value

    def plan(self, source: str) -> ImportPlan:
        return ImportPlan(
            specs=self.specs,
            errors=self.errors,
            rejected=self.rejected,
            unit=self.unit,
            graders=list(self.graders.values()),
            rubrics=list(self.rubrics.values()),
            rules=list(self.rules.values()),
            dropped=self.dropped,
            source=source,
        )
