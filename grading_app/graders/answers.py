"""Code graders comparing the output with a reference answer by value: numbers, token F1 and
OpenAI Evals' FuzzyMatch."""

import math
import re
import string
import unicodedata
from collections import Counter
from typing import Any

from django.core.exceptions import ValidationError

from grading_app.graders import register
from grading_app.graders.base import ConfigField, GradeOutcome, GraderKind, GradingInput
from grading_app.graders.expected import non_negative_number

# The first number in free text: "-3", "1,234.5", "$12.50", "42%" (the % is ignored), "1.5e-3".
# Not the tail of a word or of another number, so "v2" and "COVID-19" do not read as -19.
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+\u2212])?[$€£¥]?"
    r"(?P<number>(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)(?P<exponent>[eE][-+]?\d+)?"
)


def first_number(text: str) -> float | None:
    """The first number written in ``text``, or None when there is none."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    number = float(match["number"].replace(",", "") + (match["exponent"] or ""))
    return -number if match.group("sign") in ("-", "\u2212") else number


def _expected_number(expected: dict[str, Any], key: str) -> float | None:
    value = expected.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        # Case authors write "1,234.5" too; anything else in the string is a broken case.
        try:
            return float(value.replace(",", ""))
        except ValueError:
            pass
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"expected.{key} must be a number")


def _within(got: float, want: float, bound: float) -> bool:
    # The tiny slack absorbs float noise: 1.1 vs 1.0 with tolerance 0.1 must pass.
    diff = abs(got - want)
    return diff <= bound or math.isclose(diff, bound, rel_tol=1e-9, abs_tol=1e-12)


@register
class Numeric(GraderKind):
    key = "numeric"
    dimension = "correctness"
    description = "The first number in the output equals expected.number within a tolerance."
    config_fields = {
        "expected_field": ConfigField(str, "number", "Key of expected holding the number."),
        "tolerance": ConfigField((int, float), None, "Allowed absolute error (expected.tolerance wins)."),
        "relative_tolerance": ConfigField((int, float), None, "Allowed error as a share of the answer."),
    }

    def check_config(self, config: dict[str, Any]) -> None:
        for name in ("tolerance", "relative_tolerance"):
            value = config[name]
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValidationError({"config": f"numeric: config.{name} must be a number >= 0."})

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        want = _expected_number(item.expected, config["expected_field"])
        if want is None:
            return None
        absolute = non_negative_number(item.expected, "tolerance")
        if absolute is None:
            absolute = config["tolerance"] or 0.0
        bound = max(absolute, (config["relative_tolerance"] or 0.0) * abs(want))
        # A JSON number output is the answer itself; anything else is read as text.
        output = item.output
        if isinstance(output, int | float) and not isinstance(output, bool):
            got: float | None = float(output)
        else:
            got = first_number(item.output_text)
        if got is None:
            return GradeOutcome(0.0, False, "no number in the output")
        expected_text = f"{want:g}" + (f" ± {bound:g}" if bound else "")
        if _within(got, want, bound):
            return GradeOutcome(1.0, True, f"got {got:g}, expected {expected_text}")
        return GradeOutcome(0.0, False, f"got {got:g}, expected {expected_text}")


def _is_punctuation(char: str) -> bool:
    # ASCII punctuation as SQuAD strips it, plus Unicode punctuation (curly quotes, dashes).
    return char in string.punctuation or unicodedata.category(char).startswith("P")


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def answer_tokens(text: str) -> list[str]:
    """SQuAD normalisation: lower-case, drop punctuation, drop articles, split on whitespace."""
    text = "".join(char for char in text.casefold() if not _is_punctuation(char))
    return _ARTICLES.sub(" ", text).split()


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 of ``prediction`` against ``reference``."""
    got, want = answer_tokens(prediction), answer_tokens(reference)
    if not got or not want:
        # SQuAD's convention: two empty answers agree, one empty answer scores 0.
        return float(got == want)
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def _references(expected: dict[str, Any], key: str) -> list[str] | None:
    value = expected.get(key)
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
        raise ValueError(f"expected.{key} must be a string or a list of strings")
    return [str(v) for v in values] or None


@register
class TokenF1(GraderKind):
    key = "token_f1"
    dimension = "correctness"
    description = "SQuAD-style token F1 between the output and expected.answer (best of several)."
    config_fields = {
        "expected_field": ConfigField(str, "answer", "Key of expected holding the reference(s)."),
        "threshold": ConfigField((int, float), 0.5, "Pass when F1 is at least this (0..1)."),
    }

    def check_config(self, config: dict[str, Any]) -> None:
        if not 0 <= config["threshold"] <= 1:
            raise ValidationError({"config": "token_f1: config.threshold must be between 0 and 1."})

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        references = _references(item.expected, config["expected_field"])
        if references is None:
            return None
        score, best = max((token_f1(item.output_text, ref), ref) for ref in references)
        passed = score >= config["threshold"]
        versus = f" against {best[:80]!r}" if len(references) > 1 else ""
        return GradeOutcome(score, passed, f"token F1 {score:.2f}{versus} (threshold {config['threshold']})")


# OpenAI Evals' own normalisation (evals.elsuite.utils.normalize), kept apart from SQuAD's
# answer_tokens above on purpose: it lower-cases with str.lower (not casefold) and strips
# ASCII punctuation only, so "Straße" and curly quotes read exactly as OpenAI's eval reads them.
_ASCII_PUNCTUATION = frozenset(string.punctuation)


def evals_normalize(text: str) -> str:
    """OpenAI Evals' normalize: lower-case, drop ASCII punctuation and articles, squash spaces."""
    text = "".join(char for char in text.lower() if char not in _ASCII_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def evals_fuzzy_match(output: str, ideal: str) -> bool:
    """OpenAI Evals' fuzzy_match: after normalising, either text contains the other (an empty
    text matches only an empty one)."""
    got, want = evals_normalize(output), evals_normalize(ideal)
    if not got or not want:
        return got == want
    return got in want or want in got


def evals_f1(output: str, ideal: str) -> float:
    """OpenAI Evals' token F1 on its normalised tokens (unlike SQuAD's, two empty texts score 0)."""
    got, want = evals_normalize(output).split(), evals_normalize(ideal).split()
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


@register
class FuzzyMatch(GraderKind):
    key = "fuzzy_match"
    dimension = "correctness"
    description = (
        "OpenAI Evals' FuzzyMatch: passes when, after its normalisation (lower case, no ASCII "
        "punctuation, no articles, single spaces), the output contains an ideal of "
        "expected.fuzzy_match (a string, or a list: any of them) or an ideal contains the output. "
        "The score is its f1_score: the best token F1 against the ideals. So pass_rate is the "
        "eval's accuracy and mean_score its f1_score. Not text_similarity's fuzzy_match metric."
    )
    config_fields = {
        "expected_field": ConfigField(str, "fuzzy_match", "Key of expected holding the ideal(s)."),
    }

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        key = config["expected_field"]
        value = item.expected.get(key)
        if value is None:
            return None
        ideals = [value] if isinstance(value, str) else value
        # OpenAI's eval fails on an empty list (max of nothing) or a non-text ideal (.lower()).
        if not isinstance(ideals, list) or not ideals or not all(isinstance(i, str) for i in ideals):
            raise ValueError(f"expected.{key} must be a string or a non-empty list of strings")
        output = item.output_text
        matched = [ideal for ideal in ideals if evals_fuzzy_match(output, ideal)]
        f1 = max(evals_f1(output, ideal) for ideal in ideals)
        if matched:
            return GradeOutcome(f1, True, f"fuzzy match with {matched[0][:80]!r}; F1 {f1:.2f}")
        shown = " or ".join(repr(i[:80]) for i in ideals[:3]) + (" ..." if len(ideals) > 3 else "")
        return GradeOutcome(f1, False, f"no fuzzy match with {shown}; F1 {f1:.2f}")
