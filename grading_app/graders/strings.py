"""Code graders on the output text, exact as written: contains any/all, prefixes and suffixes,
equality, OpenAI's string_check operations, and length bounds.

Unlike the older ``contains`` (case-insensitive by default), these compare as the tools teams
migrate from do: case-sensitive unless the grader or the case says otherwise.
"""

import json
from typing import Any, ClassVar

from django.core.exceptions import ValidationError

from grading_app.graders import register
from grading_app.graders.base import ConfigField, GradeOutcome, GraderKind, GradingInput
from grading_app.graders.structured import parse_json, same_json

_CASE_SENSITIVE = ConfigField(bool, True, "Compare case as written (false: ignore case).")
CASE_MAPPINGS = ("casefold", "lowercase")
# How case is ignored. casefold: Unicode case folding ("STRASSE" contains "straße"); lowercase:
# str.lower, the mapping of JavaScript's toLowerCase and of Python's .lower(), which promptfoo's
# icontains family and OpenAI Evals' Includes(ignore_case) compare with (ß stays ß, ﬁ stays ﬁ).
_CASE_MAPPING = ConfigField(
    str, "casefold", "How case is ignored: casefold (Unicode folding, ß = ss) | lowercase (str.lower)"
)


def _field(default: str) -> ConfigField:
    return ConfigField(str, default, "Key of expected holding the value (to read another key).")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string")
    return value


def text_values(value: Any, where: str) -> list[str]:
    """One string or a non-empty list of strings."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{where} must be a string or a non-empty list of strings")
    return values


def fold(text: str, case_sensitive: bool, mapping: str = "casefold") -> str:
    if case_sensitive:
        return text
    return text.lower() if mapping == "lowercase" else text.casefold()


class _ContainsSome(GraderKind):
    """contains_all / contains_any: the output holds every / at least one of the strings."""

    need_all: ClassVar[bool]
    dimension = "correctness"
    case_options = ("case_sensitive", "case_mapping")

    def check_config(self, config: dict[str, Any]) -> None:
        if config["case_mapping"] not in CASE_MAPPINGS:
            raise ValidationError(
                {"config": f"{self.key}: config.case_mapping must be casefold or lowercase."}
            )

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        key = config["expected_field"]

        def check(value: Any, settings: dict[str, Any]) -> GradeOutcome:
            needles = text_values(value, f"expected.{key}")
            sensitive, mapping = settings["case_sensitive"], settings["case_mapping"]
            haystack = fold(item.output_text, sensitive, mapping)
            found = [n for n in needles if fold(n, sensitive, mapping) in haystack]
            missing = [n for n in needles if n not in found]
            if self.need_all:
                passed = not missing
                why = "contains all of them" if passed else f"missing: {missing}"
            else:
                passed = bool(found)
                why = f"contains {found[0]!r}" if passed else f"contains none of {needles}"
            return GradeOutcome(len(found) / len(needles), passed, why)

        return self.grade_assertions(item.expected, key, config, check)


@register
class ContainsAll(_ContainsSome):
    key = "contains_all"
    description = (
        "The output contains every string of expected.contains_all (a string or a list; "
        "case-sensitive unless case_sensitive is false, then compared by case_mapping)."
    )
    need_all = True
    config_fields = {
        "expected_field": _field("contains_all"),
        "case_sensitive": _CASE_SENSITIVE,
        "case_mapping": _CASE_MAPPING,
    }


@register
class ContainsAny(_ContainsSome):
    key = "contains_any"
    description = (
        "The output contains at least one string of expected.contains_any (case-sensitive unless "
        "case_sensitive is false, then compared by case_mapping)."
    )
    need_all = False
    config_fields = {
        "expected_field": _field("contains_any"),
        "case_sensitive": _CASE_SENSITIVE,
        "case_mapping": _CASE_MAPPING,
    }


class _Affix(GraderKind):
    """starts_with / ends_with: the output, stripped of surrounding whitespace or not, begins or
    ends with the string."""

    at_start: ClassVar[bool]
    dimension = "format"
    case_options = ("case_sensitive", "strip")

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        key = config["expected_field"]

        def check(value: Any, settings: dict[str, Any]) -> GradeOutcome:
            affixes = text_values(value, f"expected.{key}")  # several: any of them
            text = item.output_text.strip() if settings["strip"] else item.output_text
            text = fold(text, settings["case_sensitive"])
            test = str.startswith if self.at_start else str.endswith
            side = "starts" if self.at_start else "ends"
            for affix in affixes:
                if test(text, fold(affix, settings["case_sensitive"])):
                    return GradeOutcome(1.0, True, f"{side} with {affix!r}")
            shown = text[:60] if self.at_start else text[-60:]
            return GradeOutcome(
                0.0, False, f"does not {side[:-1]} with {' or '.join(map(repr, affixes))}: {shown!r}"
            )

        return self.grade_assertions(item.expected, key, config, check)


def _affix_fields(key: str) -> dict[str, ConfigField]:
    return {
        "expected_field": _field(key),
        "case_sensitive": _CASE_SENSITIVE,
        "strip": ConfigField(bool, False, "Ignore whitespace around the output first."),
    }


@register
class StartsWith(_Affix):
    key = "starts_with"
    description = "The output starts with expected.starts_with (one string, or a list: any of them)."
    at_start = True
    config_fields = _affix_fields("starts_with")


@register
class EndsWith(_Affix):
    key = "ends_with"
    description = "The output ends with expected.ends_with (one string, or a list: any of them)."
    at_start = False
    config_fields = _affix_fields("ends_with")


@register
class Equals(GraderKind):
    key = "equals"
    dimension = "correctness"
    description = (
        "The output equals expected.equals exactly: text character for character (no trimming, "
        'no normalisation); a JSON value (object form {"value": {...}}) compared as JSON.'
    )
    config_fields = {"expected_field": _field("equals"), "case_sensitive": _CASE_SENSITIVE}
    case_options = ("case_sensitive",)

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        def check(value: Any, settings: dict[str, Any]) -> GradeOutcome:
            if isinstance(value, str):
                got = fold(item.output_text, settings["case_sensitive"])
                if got == fold(value, settings["case_sensitive"]):
                    return GradeOutcome(1.0, True, "output equals the expected text")
                return GradeOutcome(0.0, False, f"expected {value[:120]!r}, got {item.output_text[:120]!r}")
            ok, got = parse_json(item.output)
            if not ok:
                return GradeOutcome(
                    0.0, False, f"expected JSON equal to {json.dumps(value)[:120]}, got no JSON"
                )
            if same_json(got, value):
                return GradeOutcome(1.0, True, "output equals the expected JSON value")
            return GradeOutcome(
                0.0, False, f"expected {json.dumps(value)[:120]}, got {json.dumps(got)[:120]}"
            )

        return self.grade_assertions(item.expected, config["expected_field"], config, check)


STRING_CHECK_OPERATIONS = ("eq", "ne", "like", "ilike")


@register
class StringCheck(GraderKind):
    key = "string_check"
    dimension = "correctness"
    description = (
        "OpenAI's string_check: the output against expected.string_check (the reference) by "
        "operation eq (equal), ne (not equal), like (contains) or ilike (contains, any case)."
    )
    config_fields = {
        "expected_field": _field("string_check"),
        "operation": ConfigField(str, "eq", "eq | ne | like | ilike"),
    }
    case_options = ("operation",)

    def check_config(self, config: dict[str, Any]) -> None:
        if config["operation"] not in STRING_CHECK_OPERATIONS:
            known = ", ".join(STRING_CHECK_OPERATIONS)
            raise ValidationError({"config": f"string_check: config.operation must be one of {known}."})

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        key = config["expected_field"]

        def check(value: Any, settings: dict[str, Any]) -> GradeOutcome:
            reference, got, operation = (
                _text(value, f"expected.{key}"),
                item.output_text,
                settings["operation"],
            )
            passed = {
                "eq": got == reference,
                "ne": got != reference,
                "like": reference in got,
                "ilike": reference.casefold() in got.casefold(),
            }[operation]
            return GradeOutcome(
                float(passed), passed, f"{operation} {reference[:120]!r}: {'yes' if passed else 'no'}"
            )

        return self.grade_assertions(item.expected, key, config, check)


LENGTH_UNITS = ("characters", "words")


@register
class Length(GraderKind):
    key = "length"
    dimension = "format"
    description = (
        'The output\'s length is within expected.length: {"min": n, "max": n, "unit": '
        '"characters" | "words"} (either bound may be left out).'
    )
    config_fields = {
        "expected_field": _field("length"),
        "min": ConfigField(int, None, "Fewest units allowed (a case's min wins)."),
        "max": ConfigField(int, None, "Most units allowed (a case's max wins)."),
        "unit": ConfigField(str, "characters", "characters | words"),
    }
    case_options = ("min", "max", "unit")
    value_required = False

    def check_config(self, config: dict[str, Any]) -> None:
        if config["unit"] not in LENGTH_UNITS:
            raise ValidationError({"config": "length: config.unit must be characters or words."})
        for name in ("min", "max"):
            if config[name] is not None and config[name] < 0:
                raise ValidationError({"config": f"length: config.{name} must be >= 0."})
        if config["min"] is not None and config["max"] is not None and config["min"] > config["max"]:
            raise ValidationError({"config": "length: config.min is larger than config.max."})

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        key = config["expected_field"]

        def check(value: Any, settings: dict[str, Any]) -> GradeOutcome:
            if value is not True:
                raise ValueError(f"expected.{key} must be an object with min and/or max")
            low, high, unit = settings["min"], settings["max"], settings["unit"]
            if low is None and high is None:
                raise ValueError(f"expected.{key} needs min or max")
            size = len(item.output_text.split()) if unit == "words" else len(item.output_text)
            bounds = f"{low if low is not None else 0}..{high if high is not None else 'any'} {unit}"
            if (low is not None and size < low) or (high is not None and size > high):
                return GradeOutcome(0.0, False, f"{size} {unit}, outside {bounds}")
            return GradeOutcome(1.0, True, f"{size} {unit}, within {bounds}")

        return self.grade_assertions(item.expected, key, config, check)
