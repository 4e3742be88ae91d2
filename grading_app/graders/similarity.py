"""Code graders scoring how close the output is to a reference text: edit distance, fuzzy
ratio, BLEU, GLEU, METEOR and ROUGE, each with a threshold.

The metrics come from the libraries the tools teams migrate from use (rapidfuzz, nltk,
Google's rouge-score), imported on first use so that loading the grader registry stays cheap.
"""

import re
from functools import cache
from typing import Any

from django.core.exceptions import ValidationError

from grading_app.graders import register, treebank
from grading_app.graders.base import ConfigField, GradeOutcome, GraderKind, GradingInput
from grading_app.graders.promptfoo_rules import utf16_units
from grading_app.graders.strings import fold, text_values

TEXT_METRICS = ("fuzzy_match", "bleu", "gleu", "meteor", *(f"rouge_{n}" for n in range(1, 6)), "rouge_l")


# Words and punctuation marks as separate tokens, roughly what nltk's word_tokenize gives
# without the punkt model it would have to download.
_TOKEN = re.compile(r"\w+|[^\w\s]")


def _words(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class _NoSynonyms:
    """METEOR's WordNet stage with no WordNet: no synonym matches (exact and stem ones stay)."""

    def synsets(self, word: str) -> list[Any]:
        return []


@cache
def _rouge_scorer(rouge_type: str) -> Any:
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer([rouge_type])


def rouge(output: str, reference: str, rouge_type: str) -> float:
    """ROUGE F-measure as Google's rouge-score computes it (its tokenizer, no stemming)."""
    return _rouge_scorer(rouge_type).score(reference, output)[rouge_type].fmeasure


def text_similarity(output: str, reference: str, metric: str) -> float:
    """``metric`` of ``output`` against ``reference``, in [0, 1]."""
    if metric == "fuzzy_match":
        from rapidfuzz import fuzz

        return fuzz.ratio(output, reference) / 100
    if metric.startswith("rouge_"):
        return rouge(output, reference, f"rouge{metric.removeprefix('rouge_').upper()}")
    got, want = _words(output), _words(reference)
    if not got or not want:
        return float(got == want)  # two empty texts agree; one empty text shares nothing
    if metric == "bleu":
        from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

        # Smoothing: a short answer missing every 4-gram scores low, not exactly 0.
        return sentence_bleu([want], got, smoothing_function=SmoothingFunction().method4)
    if metric == "gleu":
        from nltk.translate.gleu_score import sentence_gleu

        return sentence_gleu([want], got)
    from nltk.translate.meteor_score import meteor_score

    return meteor_score([want], got, wordnet=_NoSynonyms())


def _best(output: str, references: list[str], score: Any) -> tuple[float, str]:
    return max((score(output, reference), reference) for reference in references)


def _versus(references: list[str], best: str) -> str:
    return f" against {best[:80]!r}" if len(references) > 1 else ""


def _unit_threshold(kind: str, config: dict[str, Any]) -> None:
    if not 0 <= config["threshold"] <= 1:
        raise ValidationError({"config": f"{kind}: config.threshold must be between 0 and 1."})


LEVENSHTEIN_UNITS = ("characters", "utf16")


@register
class Levenshtein(GraderKind):
    key = "levenshtein"
    dimension = "correctness"
    description = (
        "The output is within an edit distance (Levenshtein) of expected.levenshtein (a reference, "
        "or a list: the closest counts); threshold is the largest distance allowed. Edits count "
        "characters (code points), or with units utf16 JavaScript string units, as promptfoo's "
        "levenshtein does (an emoji or other astral character is two)."
    )
    config_fields = {
        "expected_field": ConfigField(str, "levenshtein", "Key of expected holding the reference(s)."),
        "threshold": ConfigField(int, 5, "Largest edit distance that passes."),
        "case_sensitive": ConfigField(bool, True, "Count case differences as edits."),
        "units": ConfigField(str, "characters", "characters (code points) | utf16 (UTF-16 code units)"),
    }
    case_options = ("threshold", "case_sensitive", "units")

    def check_config(self, config: dict[str, Any]) -> None:
        if config["threshold"] < 0:
            raise ValidationError({"config": "levenshtein: config.threshold must be >= 0."})
        if config["units"] not in LEVENSHTEIN_UNITS:
            raise ValidationError({"config": "levenshtein: config.units must be characters or utf16."})

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        from rapidfuzz.distance import Levenshtein as distance

        key = config["expected_field"]

        def check(value: Any, settings: dict[str, Any]) -> GradeOutcome:
            references = text_values(value, f"expected.{key}")

            def units(text: str) -> Any:
                text = fold(text, settings["case_sensitive"])
                # rapidfuzz compares any sequences: UTF-16 code units as a list of ints.
                return utf16_units(text) if settings["units"] == "utf16" else text

            got = units(item.output_text)
            edits, best = min((distance.distance(got, units(r)), r) for r in references)
            score = distance.normalized_similarity(got, units(best))
            passed = edits <= settings["threshold"]
            unit = " (UTF-16 units)" if settings["units"] == "utf16" else ""
            why = f"edit distance {edits}{unit}{_versus(references, best)} (at most {settings['threshold']})"
            return GradeOutcome(score, passed, why)

        return self.grade_assertions(item.expected, key, config, check)


class _ReferenceScore(GraderKind):
    """A score of the output against a reference (the best of several) at least a threshold."""

    dimension = "correctness"

    def score(self, output: str, reference: str, settings: dict[str, Any]) -> float:
        raise NotImplementedError

    def label(self, settings: dict[str, Any]) -> str:
        raise NotImplementedError

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        key = config["expected_field"]

        def check(value: Any, settings: dict[str, Any]) -> GradeOutcome:
            references = text_values(value, f"expected.{key}")
            score, best = _best(item.output_text, references, lambda o, r: self.score(o, r, settings))
            passed = score >= settings["threshold"]
            versus = _versus(references, best)
            return GradeOutcome(
                score,
                passed,
                f"{self.label(settings)} {score:.3f}{versus} (threshold {settings['threshold']})",
            )

        return self.grade_assertions(item.expected, key, config, check)


def _fields(key: str, threshold: float, **extra: ConfigField) -> dict[str, ConfigField]:
    return {
        "expected_field": ConfigField(str, key, "Key of expected holding the reference(s)."),
        **extra,
        "threshold": ConfigField((int, float), threshold, "Pass when the score is at least this (0..1)."),
    }


@register
class TextSimilarity(_ReferenceScore):
    key = "text_similarity"
    description = (
        "OpenAI's text_similarity: a metric of the output against expected.text_similarity (a "
        "reference, or a list: the best counts) at least the threshold. Metrics: fuzzy_match "
        "(rapidfuzz ratio), bleu, gleu, meteor (nltk; METEOR without WordNet synonyms), rouge_1.."
        "rouge_5 and rouge_l (rouge-score F-measure). OpenAI's cosine is embedding_similarity."
    )
    config_fields = _fields(
        "text_similarity", 0.5, metric=ConfigField(str, "fuzzy_match", " | ".join(TEXT_METRICS))
    )
    case_options = ("metric", "threshold")

    def check_config(self, config: dict[str, Any]) -> None:
        if config["metric"] == "cosine":
            raise ValidationError(
                {"config": "text_similarity: cosine compares embeddings: use an embedding_similarity grader."}
            )
        if config["metric"] not in TEXT_METRICS:
            raise ValidationError(
                {"config": f"text_similarity: config.metric must be one of {', '.join(TEXT_METRICS)}."}
            )
        _unit_threshold(self.key, config)

    def score(self, output: str, reference: str, settings: dict[str, Any]) -> float:
        return text_similarity(output, reference, settings["metric"])

    def label(self, settings: dict[str, Any]) -> str:
        return settings["metric"]


@register
class RougeN(_ReferenceScore):
    key = "rouge_n"
    description = (
        "promptfoo's rouge-n: the ROUGE-N F-measure of the output against expected.rouge_n (a "
        "reference, or a list: the best counts) on the lower-cased texts' treebank tokens "
        "(punctuation marks and words of any script count; clipped n-gram counts) at least the "
        "threshold (promptfoo: n 1, threshold 0.75). text_similarity's rouge_N is rouge-score's."
    )
    config_fields = _fields("rouge_n", 0.75, n=ConfigField(int, 1, "n-gram length, 1 to 5."))
    case_options = ("n", "threshold")

    def check_config(self, config: dict[str, Any]) -> None:
        if not 1 <= config["n"] <= 5:
            raise ValidationError({"config": "rouge_n: config.n must be from 1 to 5."})
        _unit_threshold(self.key, config)

    def score(self, output: str, reference: str, settings: dict[str, Any]) -> float:
        return treebank.rouge_n(output, reference, settings["n"])

    def label(self, settings: dict[str, Any]) -> str:
        return f"ROUGE-{settings['n']}"
