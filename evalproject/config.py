"""Declarative config (DESIGN.md section 8): loading, path-named errors, and the plan.

Each app owns its sections (validate, then apply); manage.py apply_config strings them
together so that every error of every section is reported before anything is written.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.db import models


@dataclass
class ConfigErrors:
    """Collects ``(path, message)`` pairs, e.g. ``gates[0].rules[2].metric: unknown metric``."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def __str__(self) -> str:
        return "\n".join(f"{path}: {message}" for path, message in self.items)


@dataclass
class Plan:
    """What applying the config does (or would do, with --dry-run), one line per change."""

    lines: list[str] = field(default_factory=list)

    def note(self, verb: str, what: str) -> None:
        self.lines.append(f"{verb:<9} {what}")

    @property
    def changes(self) -> int:
        return sum(1 for line in self.lines if not line.startswith("unchanged"))


class ConfigFileError(Exception):
    """The file cannot be read or parsed at all."""


def load_config(path: Path) -> dict[str, Any]:
    """Parse a YAML (or JSON, which YAML reads too) config file into a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"cannot read {path}: {exc}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigFileError(
            f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: the top level must be a mapping of sections")
    return data


def check_keys(
    item: Any, path: str, errors: ConfigErrors, *, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> bool:
    """An object with the required keys and no unknown ones; False (with errors) otherwise."""
    if not isinstance(item, dict):
        errors.add(path, "must be a mapping")
        return False
    ok = True
    for key in required:
        if item.get(key) in (None, ""):
            errors.add(f"{path}.{key}", "is required")
            ok = False
    for key in sorted(set(item) - set(required) - set(optional)):
        errors.add(f"{path}.{key}", "unknown key")
        ok = False
    return ok


def as_list(value: Any, path: str, errors: ConfigErrors) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.add(path, "must be a list")
        return []
    return value


def check_fields(
    instance: models.Model, path: str, errors: ConfigErrors, exclude: tuple[str, ...] = ()
) -> None:
    """The model's own field checks (slug format, lengths, URLs), reported by path before any write."""
    try:
        instance.clean_fields(exclude=exclude)
    except ValidationError as exc:
        for field_name, messages in exc.message_dict.items():
            for message in messages:
                errors.add(f"{path}.{field_name}", message)
