"""The checks an imported construct can become: a key of the case's `expected` and the grader
that reads it. Every importer carries a construct through here, so one source's `contains`
and another's `like` land on the same key and the same grader."""

import dataclasses
import json
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


# Keys that graders read with their default config (the conventional keys of DESIGN.md and the
# object-form kinds' own keys) keep their names; variants get keys of their own, read by a
# grader configured for them. "assertions": an object-form kind (grading_app README), where a
# case may hold several assertions, each with its own options and `negate`.
CHECKS: dict[str, Check] = {
    check.key: check
    for check in (
        _check("contains", "contains", "contains", "extend"),
        _check("not_contains", "not-contains", "not_contains", "extend"),
        _check("contains_all", "contains-all", "contains_all", "assertions"),
        _check("contains_any", "contains-any", "contains_any", "assertions"),
        _check("starts_with", "starts-with", "starts_with", "assertions"),
        _check("equals", "equals", "equals", "assertions"),
        _check("string_check", "string-check", "string_check", "assertions"),
        _check("is_json", "is-json", "is_json", "assertions"),
        _check("contains_json", "contains-json", "contains_json", "assertions"),
        _check("levenshtein", "levenshtein", "levenshtein", "assertions"),
        _check("rouge_n", "rouge-n", "rouge_n", "assertions"),
        _check("text_similarity", "text-similarity", "text_similarity", "assertions"),
        _check("similar", "similar", "embedding_similarity", "assertions"),
        _check("length", "length", "length", "assertions"),
        _check("answer", "exact-match", "exact_match"),
        _check("fuzzy_match", "fuzzy-match", "fuzzy_match"),
        _check("pattern", "regex", "regex"),
        _check("not_pattern", "not-regex", "regex", expected_field="not_pattern", negate=True),
        _check("json_equals", "json-equals", "json_schema", expected_field="json_equals"),
        _check("json_match", "json-match", "json_match"),
        _check("tool_definitions", "tool-schema", "tool_schema"),
        _check("tools", "tool-calls", "tool_calls"),
        _check("must_refuse", "refusal", "refusal"),
        # promptfoo's is-refusal, decided by its own phrase rule (not Evalgate's detector).
        _check(
            "is_refusal", "promptfoo-is-refusal", "refusal", expected_field="is_refusal", rule="promptfoo"
        ),
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


def _as_assertions(value: Any) -> list[Any]:
    """A key's assertions as objects: several already, one object, or one bare value."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return list(value)
    return [value if isinstance(value, dict) else {"value": value}]


def carry(
    batch: Batch,
    expected: dict[str, Any],
    key: str,
    value: Any,
    *,
    line: int,
    construct: str,
    options: dict[str, Any] | None = None,
) -> bool:
    """Put ``value`` under ``key`` of the case's expected and need the grader that reads it.

    Object-form keys take each assertion with its ``options`` (and `negate`); a bare value
    stays bare while it is the only one. A second, different value for a single-valued key
    cannot be carried (its grader reads one value per case): it is recorded as dropped.
    Returns whether the value was carried.
    """
    check = CHECKS[key]
    options = {name: option for name, option in (options or {}).items() if option is not None}
    if options.get("negate") is False:
        del options["negate"]
    if check.merge == "extend":
        values = value if isinstance(value, list) else [value]
        current = expected.setdefault(key, [])
        current.extend(v for v in values if v not in current)
    elif check.merge == "assertions":
        entry = {"value": value, **options} if options or isinstance(value, dict) else value
        if key not in expected:
            expected[key] = entry
        else:
            current = _as_assertions(expected[key])
            added = entry if isinstance(entry, dict) else {"value": entry}
            if added not in current:
                expected[key] = [*current, added]
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
# DeepEval's expected_output, LangSmith's outputs) is checked, when the file does not say:
# the expected key and the per-case options of the check.
REFERENCE_CHECKS: dict[str, tuple[str, dict[str, Any]]] = {
    "answer": ("answer", {}),  # exact match after normalising case, whitespace and final punctuation
    "equals": ("equals", {}),  # exact match, character for character
    "contains": ("contains", {}),  # contains every reference, ignoring case
    "contains_cs": ("contains_all", {}),  # contains every reference, case as written
    "contains_any": ("contains_any", {"case_sensitive": False}),  # at least one, ignoring case
    "contains_any_cs": ("contains_any", {}),  # at least one, case as written
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
    key, options = REFERENCE_CHECKS[check]
    if key == "equals" and len(text) > 1:
        batch.drop(line, construct, "several references cannot all equal one output")
        return
    if key in ("equals", "answer"):
        carried: Any = text[0] if len(text) == 1 else text  # exact_match takes a list of references
    else:
        carried = text
    carry(batch, expected, key, carried, line=line, construct=construct, options=options)
