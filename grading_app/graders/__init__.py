"""The grader registry: kinds are looked up by key, so adding one needs no migration.

Built-in kinds register on import of their modules below. Teams add their own by naming
Python modules in the ``EVALGATE_GRADER_MODULES`` setting; each module calls ``register``.
"""

from importlib import import_module

from django.conf import settings
from django.core.exceptions import ValidationError

from grading_app.graders.base import ConfigField, GradeOutcome, GraderKind, GradingInput

_KINDS: dict[str, GraderKind] = {}
_loaded_custom = False


def register(kind_class: type[GraderKind]) -> type[GraderKind]:
    """Class decorator: make a grader kind available under its ``key``."""
    if kind_class.key in _KINDS and type(_KINDS[kind_class.key]) is not kind_class:
        raise ValueError(f"grader kind {kind_class.key!r} is registered twice")
    _KINDS[kind_class.key] = kind_class()
    return kind_class


def _load_custom_modules() -> None:
    global _loaded_custom
    if not _loaded_custom:
        _loaded_custom = True
        for module in getattr(settings, "EVALGATE_GRADER_MODULES", []):
            import_module(module)


def get_kind(key: str) -> GraderKind:
    """The registered kind for ``key``; ValidationError naming it when unknown."""
    _load_custom_modules()
    try:
        return _KINDS[key]
    except KeyError:
        known = ", ".join(sorted(_KINDS))
        raise ValidationError({"kind": f"Unknown grader kind {key!r} (known: {known})."}) from None


def kind_keys() -> list[str]:
    _load_custom_modules()
    return sorted(_KINDS)


# Built-in kinds: imported for their @register side effect.
from grading_app.graders import (  # noqa: E402, F401
    answers,
    composite,
    embeddings,
    evidence,
    judge,
    safety,
    schema,
    similarity,
    strings,
    structured,
    text,
    tools,
)

__all__ = [
    "ConfigField",
    "GradeOutcome",
    "GraderKind",
    "GradingInput",
    "get_kind",
    "kind_keys",
    "register",
]
