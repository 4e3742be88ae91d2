"""Read a corpus file the way `manage.py import_cases` reads it (its directory is the base)."""

from pathlib import Path

from datasets_app.importers import ImportPlan, read_cases

CORPUS = Path(__file__).parent / "corpus"


def read(relative: str, fmt: str, **options) -> ImportPlan:
    path = CORPUS / relative
    return read_cases(path.read_bytes(), fmt, base_dir=path.parent, file_name=path.name, **options)


def cases(plan: ImportPlan) -> dict[str, tuple]:
    """key -> (input, expected, tags) of every case read."""
    return {s.key: (s.input, s.expected, s.tags) for s in plan.specs}


def messages(plan: ImportPlan) -> dict[str, list]:
    return {s.key: s.input.get("messages") for s in plan.specs}


def expected(plan: ImportPlan) -> dict[str, dict]:
    return {s.key: s.expected for s in plan.specs}


def graders(plan: ImportPlan) -> dict[str, tuple]:
    return {g.slug: (g.kind, g.config, g.rubric) for g in plan.graders}


def dropped(plan: ImportPlan) -> list[str]:
    return [str(d) for d in plan.dropped]


def errors(plan: ImportPlan) -> list[str]:
    return [str(e) for e in plan.errors]
