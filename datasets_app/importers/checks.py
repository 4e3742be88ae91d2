"""The checks an imported construct can become: a key of the case's `expected` and the grader
that reads it. Every importer carries a construct through here, so one source's `contains`
and another's `like` land on the same key and the same grader."""

import dataclasses
import json
import re
from typing import Any

from datasets_app.importers.base import Batch, GraderSpec, RubricSpec


@dataclasses.dataclass(frozen=True)
class Check:
    key: str  # the key of expected that holds the case's value
    grader: GraderSpec
    merge: str = "single"  # "extend": several values make one list (all of them must hold)


def _check(
    key: str, slug: str, kind: str, merge: str = "single", rubric: str | None = None, **config: Any
) -> Check:
    return Check(key, GraderSpec(slug, kind, config, rubric), merge)


# Keys that graders read with their default config (DESIGN.md's conventional keys) keep
# their names; variants get keys of their own, read by a grader configured for them.
CHECKS: dict[str, Check] = {
    check.key: check
    for check in (
        _check("contains", "contains", "contains", "extend"),
        _check(
            "contains_cs",
            "contains-case-sensitive",
            "contains",
            "extend",
            expected_field="contains_cs",
            case_sensitive=True,
        ),
        _check("contains_any", "contains-any", "contains", expected_field="contains_any", mode="any"),
        _check(
            "contains_any_cs",
            "contains-any-case-sensitive",
            "contains",
            expected_field="contains_any_cs",
            mode="any",
            case_sensitive=True,
        ),
        _check("not_contains", "not-contains", "not_contains", "extend"),
        _check(
            "not_contains_cs",
            "not-contains-case-sensitive",
            "not_contains",
            "extend",
            expected_field="not_contains_cs",
            case_sensitive=True,
        ),
        _check("answer", "exact-match", "exact_match"),
        _check("equals", "equals", "exact_match", expected_field="equals", normalize=False),
        _check("pattern", "regex", "regex"),
        _check("pattern_i", "regex-ignore-case", "regex", expected_field="pattern_i", ignore_case=True),
        _check("starts_with", "starts-with", "regex", expected_field="starts_with"),
        _check("schema", "json-schema", "json_schema"),
        _check("json_equals", "json-equals", "json_schema", expected_field="json_equals"),
        _check("must_refuse", "refusal", "refusal"),
    )
}

# Judge constructs: the case holds its own rubric text under the key, and a judge grader on a
# draft rubric (signed off by its owner before it counts) reads the cases that have the key.
JUDGE_CRITERIA = {
    "llm_rubric": (
        "Each case states its own rubric in expected.llm_rubric (written for promptfoo's "
        "llm-rubric assertion). Pass the answer when it satisfies that rubric; score how fully "
        "it does, from 0 to 1."
    ),
    "closedqa": (
        "Each case states a criterion in expected.closedqa (promptfoo's model-graded-closedqa). "
        "Pass the answer only if it meets the criterion; score 1 when it does, 0 when it does not."
    ),
}


def _escape(text: str) -> str:
    # Only the characters special in both Python's and JavaScript's regexes, so the pattern
    # stays readable and exports to promptfoo as it is.
    return re.sub(r"([\\.^$*+?{}\[\]|()])", r"\\\1", text)


def starts_with_pattern(prefixes: list[str]) -> str:
    r"""A regex that matches text starting with any of ``prefixes``, case-sensitively: what
    promptfoo's starts-with and OpenAI Evals' Match check (\A: the start, whatever follows)."""
    return r"\A(?:" + "|".join(_escape(prefix) for prefix in prefixes) + ")"


def prefixes_of(pattern: str) -> list[str] | None:
    """The prefixes a starts_with_pattern() was built from, or None for any other pattern."""
    if not (pattern.startswith(r"\A(?:") and pattern.endswith(")")):
        return None
    body = pattern[5:-1]
    parts = re.split(r"(?<!\\)\|", body) if body else [""]
    prefixes = [re.sub(r"\\(.)", r"\1", part, flags=re.DOTALL) for part in parts]
    return prefixes if starts_with_pattern(prefixes) == pattern else None


def carry(batch: Batch, expected: dict[str, Any], key: str, value: Any, *, line: int, construct: str) -> bool:
    """Put ``value`` under ``key`` of the case's expected and need the grader that reads it.

    A second, different value for a single-valued key cannot be carried (each grader reads
    one value per case): it is recorded as dropped. Returns whether the value was carried.
    """
    check = CHECKS[key]
    if check.merge == "extend":
        values = value if isinstance(value, list) else [value]
        current = expected.setdefault(key, [])
        current.extend(v for v in values if v not in current)
    elif key in expected and expected[key] != value:
        batch.drop(line, construct, f"a second {key} check in one case (Evalgate reads one {key} per case)")
        return False
    else:
        expected[key] = value
    batch.need_grader(check.grader)
    return True


def judge_slug(source: str, key: str, threshold: float | None) -> str:
    suffix = "" if threshold is None else f"-min-{round(threshold * 100):d}"
    return f"{source}-{key.replace('_', '-')}{suffix}"


def carry_judge(
    batch: Batch,
    expected: dict[str, Any],
    *,
    source: str,
    key: str,
    text: str,
    threshold: float | None,
    line: int,
    construct: str,
    name: str,
) -> bool:
    """The case's own rubric text under ``key`` (``key@threshold`` when the source sets a
    minimum score), read by a judge grader whose rubric arrives as a draft."""
    slug = judge_slug(source, key, threshold)
    field = key if threshold is None else f"{key}@{threshold:g}"
    if field in expected and expected[field] != text:
        batch.drop(line, construct, f"a second {construct} in one case (one rubric text per judge per case)")
        return False
    expected[field] = text
    batch.need_rubric(
        RubricSpec(
            slug=slug,
            name=name if threshold is None else f"{name} (score at least {threshold:g})",
            criteria=JUDGE_CRITERIA[key],
            pass_threshold=0.0 if threshold is None else float(threshold),
        )
    )
    batch.need_grader(GraderSpec(slug, "llm_judge", {"expected_field": field}, slug))
    return True


# What --reference-as may name: how a dataset's reference answer (inspect_ai's target,
# DeepEval's expected_output, LangSmith's outputs) is checked, when the file does not say.
REFERENCE_CHECKS = {
    "answer": "answer",  # exact match after normalising case, whitespace and final punctuation
    "equals": "equals",  # exact match, character for character
    "contains": "contains",  # contains every reference, ignoring case
    "contains_any": "contains_any",  # contains at least one of the references, ignoring case
    "contains_cs": "contains_cs",
    "contains_any_cs": "contains_any_cs",
}


def carry_reference(batch: Batch, expected: dict[str, Any], value: Any, *, line: int, construct: str) -> None:
    """A reference answer whose check the source keeps in code (a scorer, a metric): carried as
    the check --reference-as names; without it kept as expected.reference (no grader reads
    that key) and recorded as dropped, since nothing would check it."""
    check = batch.options.reference_as
    values = value if isinstance(value, list) else [value]
    text = [v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in values]
    if check is None:
        expected["reference"] = value
        batch.drop(
            line,
            construct,
            "the source checks it in code (a scorer or metric): pass --reference-as "
            f"({', '.join(REFERENCE_CHECKS)}) to say which check it is",
        )
        return
    key = REFERENCE_CHECKS[check]
    if key == "equals" and len(text) > 1:
        batch.drop(line, construct, "several references cannot all equal one output")
        return
    if key in ("equals", "answer"):
        carried: Any = text[0] if len(text) == 1 else text  # exact_match takes a list of references
    else:
        carried = text
    carry(batch, expected, key, carried, line=line, construct=construct)
