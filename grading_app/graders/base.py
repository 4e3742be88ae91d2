"""The contract every grader kind follows: declared config, one dimension, a pure grade()."""

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.core.exceptions import ValidationError


@dataclass(frozen=True)
class GradeOutcome:
    """A grader's answer for one case: score in [0, 1], passed, and why."""

    score: float
    passed: bool
    rationale: str = ""


@dataclass(frozen=True)
class GradingInput:
    """Everything a grader may look at for one case (read-only)."""

    case_input: dict[str, Any]
    expected: dict[str, Any]
    output: Any  # text, or a JSON object/list; None when the output is missing
    trace: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def output_text(self) -> str:
        """The output as text: itself when it is text, else its JSON serialisation."""
        if self.output is None:
            return ""
        if isinstance(self.output, str):
            return self.output
        return json.dumps(self.output, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class ConfigField:
    """One key of a grader kind's config: its type, default and help text."""

    type: type | tuple[type, ...]
    default: Any = None
    help: str = ""


class GraderKind:
    """Base class of grader kinds. Subclasses set the class attributes and grade().

    ``grade`` is pure: no database, no network (judge kinds call out through llm.py in
    their own subclass). It returns None when the case does not say what success looks
    like for this kind (the conventional ``expected`` key is absent): no grade, not a fail.
    """

    key: ClassVar[str]
    dimension: ClassVar[str]
    description: ClassVar[str] = ""
    config_fields: ClassVar[dict[str, ConfigField]] = {}
    needs_rubric: ClassVar[bool] = False  # judge kinds: graded through grading_app.judging

    def validate_config(self, config: Any) -> dict[str, Any]:
        """Return the config with defaults filled in; raise ValidationError naming the key."""
        if config in (None, ""):
            config = {}
        if not isinstance(config, dict):
            raise ValidationError({"config": "Config must be a JSON object."})
        unknown = sorted(set(config) - set(self.config_fields))
        if unknown:
            allowed = ", ".join(sorted(self.config_fields)) or "none"
            raise ValidationError(
                {"config": f"Unknown key(s) for {self.key}: {', '.join(unknown)} (allowed: {allowed})."}
            )
        cleaned: dict[str, Any] = {}
        for name, spec in self.config_fields.items():
            value = config.get(name)
            if value is None:  # explicit null means "the default", never "off"
                value = spec.default
            types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
            # bool is an int subclass: never accept True where a number is meant.
            if value is not None and (
                not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
            ):
                raise ValidationError({"config": f"{self.key}: config.{name} has the wrong type."})
            cleaned[name] = value
        self.check_config(cleaned)
        return cleaned

    def check_config(self, config: dict[str, Any]) -> None:
        """Extra validation for a kind (override); raise ValidationError naming the key."""

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        raise NotImplementedError

    def applies(self, item: GradingInput, config: dict[str, Any]) -> bool:
        """Whether this kind grades the case at all (reads something of its ``expected``).

        By default, a probe: grade the case against an empty output and see whether the kind
        answers. A kind that raises on the probe cannot grade the case as written.
        """
        try:
            return self.grade(item, config) is not None
        except Exception:
            return False
