"""Read case files of every supported source format into an import plan; no database work.

One module per source format, each with ``read(text, batch)``; FORMATS names them. What
each construct of each format becomes is README's "Importing from other tools".
"""

from collections.abc import Callable
from pathlib import Path

from django.utils.module_loading import import_string

from datasets_app.choices import Tier
from datasets_app.importers.base import (
    CASE_FIELDS,
    Batch,
    CaseRefs,
    CaseSpec,
    Dropped,
    GraderSpec,
    ImportFailed,
    ImportPlan,
    LineError,
    ReadOptions,
    RubricSpec,
    RuleSpec,
)
from datasets_app.importers.export import export_csv, export_jsonl, export_promptfoo

# Each format's reader, imported when a file of that format is read: every process imports
# this package (the services do), and the readers bring jinja2 and yaml (~40 ms at start-up).
FORMATS: dict[str, str] = {
    "jsonl": "datasets_app.importers.jsonl.read",
    "csv": "datasets_app.importers.csv_cases.read",
    "promptfoo": "datasets_app.importers.promptfoo.read",
    "openai-evals": "datasets_app.importers.openai_evals.read",
    "openai-evals-api": "datasets_app.importers.openai_api.read",
    "inspect": "datasets_app.importers.inspect_ai.read",
    "deepeval": "datasets_app.importers.deepeval.read",
    "langsmith": "datasets_app.importers.langsmith.read",
    "langfuse": "datasets_app.importers.langsmith.read",
}


def reader(fmt: str) -> Callable[[str, Batch], None]:
    """The ``read(text, batch)`` of format ``fmt`` (a key of FORMATS)."""
    return import_string(FORMATS[fmt])


def read_cases(
    data: bytes,
    fmt: str,
    *,
    input_field: str | None = None,
    ideal_field: str | None = None,
    default_tier: str = Tier.MONITORING,
    base_dir: Path | None = None,
    file_name: str = "",
    eval_name: str | None = None,
    items: Path | None = None,
    eval_class: str | None = None,
    reference_as: str | None = None,
    persona: str | None = None,
) -> ImportPlan:
    """Read a whole file into its plan: the good cases, the problems of every bad line, what
    the cases need (graders, rubric drafts, gate rules) and what the file held that cannot be
    carried. Never raises for bad content (only for an unknown format or default tier, which
    are the caller's bugs). ``base_dir`` is the file's directory: references to other files
    (promptfoo's file://, a registry's samples) are followed only below it, and not at all
    without it (an upload)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if default_tier not in Tier.values:
        raise ValueError(f"unknown default tier {default_tier!r}")
    options = ReadOptions(
        input_field=input_field or None,
        ideal_field=ideal_field or None,
        default_tier=str(default_tier),  # plain str, not the enum
        base_dir=base_dir,
        file_name=file_name,
        eval_name=eval_name,
        items=items,
        eval_class=eval_class or None,
        reference_as=reference_as or None,
        persona=persona or None,
    )
    # Imported here, not at the top: the import service in datasets_app.services imports this module.
    from datasets_app.services import validate_case_content

    batch = Batch(options, validate_case_content)
    text = decode(data, batch)
    if text is not None:
        reader(fmt)(text, batch)
    if not batch.errors and not batch.specs:
        batch.error(1, "file", "the file has no cases")
    return batch.plan(f"{fmt} {file_name}".strip())


def decode(data: bytes, batch: Batch) -> str | None:
    """The file as text; a byte-order mark (spreadsheets write one) is not part of it."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        batch.error(line, "encoding", f"byte 0x{data[exc.start]:02x} is not UTF-8; save the file as UTF-8")
        return None


def parse_cases(data: bytes, fmt: str, **options: object) -> list[CaseSpec]:
    """Parse a whole file into validated specs, or raise ImportFailed listing every bad line
    and every construct it cannot carry.

    Only the file's own problems: for those and the database conflicts together, pass
    read_cases()'s result to the import service instead.
    """
    plan = read_cases(data, fmt, **options)  # type: ignore[arg-type]
    problems = [*plan.errors, *(dropped.as_error() for dropped in plan.dropped)]
    if problems:
        raise ImportFailed(sorted(problems, key=lambda e: (e.file, e.line)))
    return plan.specs


__all__ = [
    "CASE_FIELDS",
    "FORMATS",
    "CaseRefs",
    "CaseSpec",
    "Dropped",
    "GraderSpec",
    "ImportFailed",
    "ImportPlan",
    "LineError",
    "RubricSpec",
    "RuleSpec",
    "export_csv",
    "export_jsonl",
    "export_promptfoo",
    "parse_cases",
    "read_cases",
]
