"""promptfoo's `file://` references: resolved against the config's directory, never outside it."""

import glob
import json
from pathlib import Path
from typing import Any

import yaml

from datasets_app.importers.base import Batch
from datasets_app.importers.documents import Yaml12Loader

GLOB_CHARS = set("*?[")
TEXT_SUFFIXES = {".txt", ".md", ".j2", ".njk", ".nunjucks", ".prompt", ""}
CODE_SUFFIXES = {".js", ".mjs", ".cjs", ".ts", ".py", ".rb"}


def is_reference(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("file://")


def is_code(reference: str) -> bool:
    """A reference to JavaScript or Python (`file://check.py:grade`): code, never run here."""
    path = (
        reference[len("file://") :].rsplit(":", 1)[0]
        if ".py:" in reference or ".js:" in reference
        else (reference[len("file://") :])
    )
    return Path(path).suffix in CODE_SUFFIXES


def resolve(reference: str, base_dir: Path | None, batch: Batch, line: int, field: str) -> list[Path]:
    """The files a `file://` reference (or glob) names, sorted; errors name the reference."""
    if base_dir is None:
        batch.error(
            line,
            field,
            f"{reference} refers to a file; an uploaded file's directory is unknown, so import it "
            "with `manage.py import_cases` from the config's own directory",
        )
        return []
    relative = reference[len("file://") :]
    root = base_dir.resolve()
    if GLOB_CHARS & set(relative):
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            batch.error(line, field, f"{reference} reaches outside the config's directory")
            return []
        paths = sorted(Path(p) for p in glob.glob(str(root / relative), recursive=True))
        paths = [p for p in paths if p.is_file()]
        if not paths:
            batch.error(line, field, f"{reference} matches no file")
        return paths
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        batch.error(line, field, f"{reference} reaches outside the config's directory")
        return []
    if not path.is_file():
        batch.error(line, field, f"{reference}: no such file")
        return []
    return [path]


def label(path: Path, base_dir: Path) -> str:
    """How errors name a referenced file: its path below the config's directory."""
    return str(path.relative_to(base_dir.resolve()))


def read_text(path: Path, batch: Batch, line: int, field: str) -> str | None:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        batch.error(line, field, f"{path.name} is not UTF-8 text")
    except OSError as exc:
        batch.error(line, field, f"cannot read {path.name}: {exc.strerror}")
    return None


def load_value(path: Path, batch: Batch, line: int, field: str) -> Any:
    """A referenced file's content as promptfoo reads it for a var or an assertion value:
    JSON and YAML parsed, other text as text. None when it cannot be read (reported)."""
    text = read_text(path, batch, line, field)
    if text is None:
        return None
    try:
        if path.suffix == ".json":
            return json.loads(text)
        if path.suffix in (".yaml", ".yml"):
            return yaml.load(text, Loader=Yaml12Loader)
    except (ValueError, yaml.YAMLError) as exc:
        batch.error(line, field, f"{path.name} is not valid {path.suffix[1:].upper()}: {exc}")
        return None
    return text
