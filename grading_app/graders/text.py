"""Code graders on the output text: exact match, substrings, regular expressions."""

import re
import unicodedata
from typing import Any

from django.core.exceptions import ValidationError

from evalproject import jsregex
from grading_app.graders import register
from grading_app.graders.base import ConfigField, GradeOutcome, GraderKind, GradingInput


def normalise(text: str, *, case_sensitive: bool = False) -> str:
    """Unicode NFKC, collapsed whitespace, trailing punctuation dropped; lower-cased unless asked."""
    text = unicodedata.normalize("NFKC", text)
    # Punctuation and spaces together: French writes "Oui !" and means "Oui".
    text = " ".join(text.split()).rstrip(".!? ")
    return text if case_sensitive else text.casefold()


def _as_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    return [str(item) for item in items]


@register
class ExactMatch(GraderKind):
    key = "exact_match"
    dimension = "correctness"
    description = "The output equals the reference answer (expected.answer), optionally normalised."
    config_fields = {
        "expected_field": ConfigField(str, "answer", "Key of expected holding the reference."),
        "normalize": ConfigField(bool, True, "Ignore case, extra whitespace, final punctuation."),
        "case_sensitive": ConfigField(bool, False, "With normalize, keep case differences."),
    }

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        references = _as_list(item.expected.get(config["expected_field"]))
        if references is None:
            return None
        got = item.output_text
        if config["normalize"]:
            got = normalise(got, case_sensitive=config["case_sensitive"])
            references = [normalise(r, case_sensitive=config["case_sensitive"]) for r in references]
        if got in references:
            return GradeOutcome(1.0, True, "output matches the reference")
        return GradeOutcome(0.0, False, f"expected {references[0]!r}, got {got[:120]!r}")


class _Substrings(GraderKind):
    must_appear: bool
    config_fields = {
        "expected_field": ConfigField(str, "", "Key of expected with the strings."),
        "case_sensitive": ConfigField(bool, False),
        "mode": ConfigField(str, "all", "all: every string; any: at least one."),
    }

    def check_config(self, config: dict[str, Any]) -> None:
        if config["mode"] not in ("all", "any"):
            raise ValidationError({"config": f"{self.key}: config.mode must be 'all' or 'any'."})

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        needles = _as_list(item.expected.get(config["expected_field"] or self.key))
        if not needles:
            return None
        haystack = item.output_text if config["case_sensitive"] else item.output_text.casefold()
        found = [n for n in needles if (n if config["case_sensitive"] else n.casefold()) in haystack]
        if self.must_appear:
            passed = len(found) == len(needles) if config["mode"] == "all" else bool(found)
            missing = [n for n in needles if n not in found]
            why = "all required strings present" if passed else f"missing: {missing}"
            return GradeOutcome(len(found) / len(needles), passed, why)
        why = "no forbidden string present" if not found else f"forbidden strings present: {found}"
        return GradeOutcome(1.0 - len(found) / len(needles), not found, why)


@register
class Contains(_Substrings):
    key = "contains"
    dimension = "correctness"
    description = "The output contains the strings in expected.contains."
    must_appear = True


@register
class NotContains(_Substrings):
    key = "not_contains"
    dimension = "safety"
    description = "The output contains none of the strings in expected.not_contains."
    must_appear = False


FLAVORS = ("python", "ecmascript")


@register
class Regex(GraderKind):
    key = "regex"
    dimension = "format"
    description = "The output matches the regular expression in expected.pattern."
    config_fields = {
        "expected_field": ConfigField(str, "pattern"),
        "pattern": ConfigField(str, None, "A fixed pattern for every case instead of expected."),
        "full_match": ConfigField(bool, False),
        "ignore_case": ConfigField(bool, False),
        "flavor": ConfigField(
            str,
            "python",
            "python: Python's re. ecmascript: JavaScript's RegExp without flags, as promptfoo's "
            "regex assertion reads the pattern (matched on the text's UTF-16 code units).",
        ),
    }

    def check_config(self, config: dict[str, Any]) -> None:
        if config["flavor"] not in FLAVORS:
            raise ValidationError({"config": f"regex: config.flavor must be one of {', '.join(FLAVORS)}."})
        if config["flavor"] == "ecmascript" and config["ignore_case"]:
            # JavaScript's i flag folds case by its own table; no flag is what promptfoo sets.
            raise ValidationError({"config": "regex: config.ignore_case is not available with ecmascript."})
        if config["pattern"] is not None:
            try:
                self._compile(config["pattern"], config)
            except (re.error, ValueError) as exc:
                raise ValidationError({"config": f"regex: config.pattern is invalid: {exc}"}) from exc

    def _compile(self, pattern: str, config: dict[str, Any]) -> re.Pattern[str]:
        """The compiled pattern; re.error or ValueError when the flavor cannot read it."""
        if config["flavor"] == "ecmascript":
            return jsregex.compile_js(pattern)
        return re.compile(pattern, re.IGNORECASE if config["ignore_case"] else 0)

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        pattern = config["pattern"] or item.expected.get(config["expected_field"])
        if not pattern:
            return None
        try:
            compiled = self._compile(str(pattern), config)
        except (re.error, ValueError) as exc:
            # The case itself is broken, not the candidate: report it, never pass it.
            raise ValueError(f"invalid pattern in case: {exc}") from exc
        text = item.output_text
        if config["flavor"] == "ecmascript":
            text = jsregex.utf16(text)  # JavaScript matches code units: an emoji is two
        match = compiled.fullmatch if config["full_match"] else compiled.search
        if match(text):
            return GradeOutcome(1.0, True, f"matches /{pattern}/")
        return GradeOutcome(0.0, False, f"does not match /{pattern}/")
