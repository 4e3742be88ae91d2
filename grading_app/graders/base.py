"""The contract every grader kind follows: declared config, one dimension, a pure grade()."""

import json
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from django.core.exceptions import ValidationError


@dataclass(frozen=True)
class GradeOutcome:
    """A grader's answer for one case: score in [0, 1], passed, and why."""

    score: float
    passed: bool
    rationale: str = ""


def output_text(output: Any) -> str:
    """An output as text: itself when it is text, else its JSON serialisation ("" for none)."""
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    return json.dumps(output, sort_keys=True, ensure_ascii=False)


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
        return output_text(self.output)


@dataclass(frozen=True)
class ConfigField:
    """One key of a grader kind's config: its type, default and help text."""

    type: type | tuple[type, ...]
    default: Any = None
    help: str = ""

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` has this field's type (None always does: it means the default)."""
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        # bool is an int subclass: never accept True where a number is meant.
        return value is None or (
            isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        )


NEGATE = ConfigField(
    bool, False, "Invert the result: pass exactly when the check fails (promptfoo's not- variants)."
)


def negated(outcome: GradeOutcome) -> GradeOutcome:
    """The opposite verdict, its score mirrored, saying so in the rationale."""
    return replace(
        outcome,
        score=1.0 - outcome.score,
        passed=not outcome.passed,
        rationale=f"negated: {'passes' if outcome.passed else 'fails'} unnegated ({outcome.rationale})",
    )


@dataclass(frozen=True)
class Assertion:
    """One check a case asks of a kind: the value, the settings it runs with, and its position."""

    value: Any
    settings: dict[str, Any]
    negate: bool = False
    where: str = ""  # "expected.levenshtein[1]": named in errors and rationales


def all_of(results: list[tuple[Assertion, GradeOutcome]]) -> GradeOutcome:
    """Several assertions of one kind on a case: each must pass; the score is their mean."""
    if len(results) == 1:
        return results[0][1]
    failed = [f"{a.where}: {o.rationale}" for a, o in results if not o.passed]
    score = sum(o.score for _, o in results) / len(results)
    if failed:
        return GradeOutcome(score, False, "; ".join(failed))
    return GradeOutcome(score, True, "; ".join(f"{a.where}: {o.rationale}" for a, o in results))


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
    # Config keys a case may override per assertion in the object form of its expected value
    # ({"value": ..., "threshold": 0.8}); see case_assertions().
    case_options: ClassVar[tuple[str, ...]] = ()
    # Kinds whose object form is all options (length: {"max": 200}) take it without a value.
    value_required: ClassVar[bool] = True

    @property
    def all_config_fields(self) -> dict[str, ConfigField]:
        """The kind's own config keys, plus ``negate`` for every kind graded in code."""
        if self.needs_rubric:
            return self.config_fields
        return {**self.config_fields, "negate": NEGATE}

    def config_schema(self) -> dict[str, Any]:
        """The kind's config as a JSON Schema (for editors, importers and the docs)."""
        names = {
            str: "string",
            bool: "boolean",
            int: "integer",
            float: "number",
            list: "array",
            dict: "object",
        }
        properties: dict[str, Any] = {}
        for name, spec in self.all_config_fields.items():
            types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
            # An int is a number too: (int, float) reads as "number" alone.
            kinds = sorted({names[t] for t in types} - ({"integer"} if float in types else set()))
            prop: dict[str, Any] = {"type": kinds[0] if len(kinds) == 1 else kinds, "description": spec.help}
            if spec.default is not None:
                prop["default"] = spec.default
            properties[name] = prop
        return {"type": "object", "properties": properties, "additionalProperties": False}

    def validate_config(self, config: Any) -> dict[str, Any]:
        """Return the config with defaults filled in; raise ValidationError naming the key."""
        if config in (None, ""):
            config = {}
        if not isinstance(config, dict):
            raise ValidationError({"config": "Config must be a JSON object."})
        fields = self.all_config_fields
        unknown = sorted(set(config) - set(fields))
        if unknown:
            allowed = ", ".join(sorted(fields)) or "none"
            raise ValidationError(
                {"config": f"Unknown key(s) for {self.key}: {', '.join(unknown)} (allowed: {allowed})."}
            )
        cleaned: dict[str, Any] = {}
        for name, spec in fields.items():
            value = config.get(name)
            if value is None:  # explicit null means "the default", never "off"
                value = spec.default
            if not spec.accepts(value):
                raise ValidationError({"config": f"{self.key}: config.{name} has the wrong type."})
            if spec is NEGATE and not value:
                continue  # kept only when set, so saved configs read as they did before it existed
            cleaned[name] = value
        self.check_config(cleaned)
        return cleaned

    def check_config(self, config: dict[str, Any]) -> None:
        """Extra validation for a kind (override); raise ValidationError naming the key."""

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        raise NotImplementedError

    def evaluate(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        """What runs and monitors call: ``grade`` with the config's missing keys at their
        defaults (a grader saved before a key existed), inverted when ``negate`` is set."""
        if self.config_fields.keys() - config.keys():
            config = {name: spec.default for name, spec in self.config_fields.items()} | config
        outcome = self.grade(item, config)
        if outcome is None or not config.get("negate"):
            return outcome
        return negated(outcome)

    def case_assertions(
        self, expected: dict[str, Any], key: str, config: dict[str, Any]
    ) -> list[Assertion] | None:
        """The assertions a case makes under ``expected[key]``; None when it makes none.

        Each is a bare value, or an object ``{"value": ..., <option>: ...}`` overriding the
        grader's config for that assertion (only ``case_options``, plus ``negate``); a list of
        such objects is several assertions, all of which must hold. A bare list is one value
        (contains_any's strings). A malformed one is a broken case: ValueError naming its path.
        """
        raw = expected.get(key)
        if raw is None:
            return None
        several = isinstance(raw, list) and bool(raw) and all(isinstance(e, dict) for e in raw)
        entries = (
            [(f"expected.{key}[{i}]", e) for i, e in enumerate(raw)]
            if several
            else [(f"expected.{key}", raw)]
        )
        found: list[Assertion] = []
        for where, entry in entries:
            if not isinstance(entry, dict):
                found.append(Assertion(entry, config, where=where))
                continue
            if "value" not in entry and self.value_required:
                raise ValueError(f"{where} needs a 'value' (the object form is {{\"value\": ..., options}})")
            allowed = {"value", "negate", *self.case_options}
            unknown = sorted(set(entry) - allowed)
            if unknown:
                raise ValueError(
                    f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
                )
            overrides = {k: v for k, v in entry.items() if k not in ("value", "negate") and v is not None}
            fields = self.all_config_fields
            for name, value in overrides.items():
                if not fields[name].accepts(value):
                    raise ValueError(f"{where}.{name} has the wrong type")
            negate = entry.get("negate", False)
            if not isinstance(negate, bool):
                raise ValueError(f"{where}.negate must be true or false")
            settings = {**config, **overrides}
            if overrides:
                try:
                    self.check_config(settings)
                except ValidationError as exc:
                    raise ValueError(f"{where}: {'; '.join(exc.messages)}") from None
            found.append(Assertion(entry.get("value", True), settings, negate, where))
        return found

    def grade_assertions(
        self, expected: dict[str, Any], key: str, config: dict[str, Any], check: Any
    ) -> GradeOutcome | None:
        """Grade every assertion of ``expected[key]`` with ``check(value, settings)`` -> outcome;
        an assertion that says ``negate`` is inverted; all must pass."""
        found = self.case_assertions(expected, key, config)
        if not found:
            return None
        results = []
        for assertion in found:
            outcome = check(assertion.value, assertion.settings)
            results.append((assertion, negated(outcome) if assertion.negate else outcome))
        return all_of(results)

    def reads(self, expected: dict[str, Any], config: dict[str, Any]) -> bool:
        """Judge kinds: whether a case with this ``expected`` is judged at all (all, by default)."""
        return True

    def applies(self, item: GradingInput, config: dict[str, Any]) -> bool:
        """Whether this kind grades the case at all (reads something of its ``expected``).

        By default, a probe: grade the case against an empty output and see whether the kind
        answers. A kind that raises on the probe cannot grade the case as written.
        """
        try:
            return self.grade(item, config) is not None
        except Exception:
            return False
