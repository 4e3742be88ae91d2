"""promptfoo assertions -> keys of a case's `expected` (read by graders), judge rubric drafts
and gate rules; every assertion that cannot be carried is recorded as dropped, with its line.

What each assertion type becomes is the table in README ("Moving from promptfoo").
"""

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from datasets_app.importers.base import Batch, RuleSpec, kind_of
from datasets_app.importers.checks import carry, carry_judge, starts_with_pattern

ASSERT_FIELDS = {
    "type",
    "value",
    "threshold",
    "weight",
    "metric",
    "transform",
    "config",
    "provider",
    "rubricPrompt",
    "contextTransform",
    "assert",
}

# type -> (expected key, how the value is read): substring checks of each case sensitivity.
SUBSTRINGS = {
    "contains": ("contains_cs", "one"),
    "icontains": ("contains", "one"),
    "contains-all": ("contains_cs", "all"),
    "icontains-all": ("contains", "all"),
    "contains-any": ("contains_any_cs", "any"),
    "icontains-any": ("contains_any", "any"),
}
# not- variants that mean "none of these": exactly what not_contains checks.
NEGATED_SUBSTRINGS = {
    "contains": "not_contains_cs",
    "icontains": "not_contains",
    "contains-any": "not_contains_cs",
    "icontains-any": "not_contains",
}
FOREIGN_CODE = {"javascript", "python", "ruby", "webhook"}
NEEDS_A_KIND = {
    "contains-json": "no grader kind extracts JSON from within text yet",
    "levenshtein": "no levenshtein grader kind yet",
    "similar": "no embedding-similarity grader kind yet",
    "rouge-n": "no ROUGE grader kind yet",
    "is-valid-openai-function-call": "no tool-call validity grader kind yet",
    "is-valid-openai-tools-call": "no tool-call validity grader kind yet",
    "is-valid-function-call": "no tool-call validity grader kind yet",
}
JUDGES = {
    "llm-rubric": ("llm_rubric", "promptfoo llm-rubric"),
    "model-graded-closedqa": ("closedqa", "promptfoo model-graded-closedqa"),
}
RULE_METRICS = {"latency": ("latency_p95_ms", "ms"), "cost": ("cost_per_case_usd", "USD")}


@dataclasses.dataclass
class Target:
    """Where one test's assertions land: its expected keys, its tags and the rules it needs."""

    expected: dict[str, Any]
    tags: list[str]


Loader = Callable[[Any, int], Any]


def translate(
    batch: Batch, asserts: list[tuple[int, Any]], target: Target, load: Loader, *, has_threshold: bool
) -> None:
    """Carry each (line, assertion) of a test into ``target``, or record it as dropped."""
    for line, check in asserts:
        _one(batch, line, check, target, load, has_threshold=has_threshold)


def _one(batch: Batch, line: int, check: Any, target: Target, load: Loader, *, has_threshold: bool) -> None:
    if not isinstance(check, dict) or not isinstance(check.get("type"), str):
        batch.error(line, "assert", f"an assertion must be a mapping with a type, not {kind_of(check)}")
        return
    kind = check["type"]
    construct = f"assert {kind}"
    unknown = sorted(set(check) - ASSERT_FIELDS)
    if unknown:
        batch.error(line, "assert", f"{kind}: unknown field(s) {', '.join(unknown)}")
        return
    if check.get("transform") or check.get("contextTransform"):
        batch.drop(line, construct, "its transform is JavaScript or Python, and no foreign code is run")
        return
    for field in ("config", "provider", "rubricPrompt"):
        if check.get(field):
            batch.drop(line, construct, f"{field} is not carried (the judge and its prompt are Evalgate's)")
            return
    if kind == "assert-set":
        _assert_set(batch, line, check, target, load, has_threshold=has_threshold)
        return
    if isinstance(check.get("metric"), str) and check["metric"]:
        # A named metric groups assertions into one score in promptfoo's report; here a tag
        # on the case, so gate rules and run pages can scope to it.
        tag = f"metric:{check['metric']}"
        if tag not in target.tags:
            target.tags.append(tag)
    negated = kind.startswith("not-")
    base = kind[4:] if negated else kind
    value = load(check.get("value"), line)
    if value is _FAILED:
        return
    if base in FOREIGN_CODE:
        batch.drop(line, construct, "it runs JavaScript, Python or a webhook, and no foreign code is run")
    elif base in SUBSTRINGS:
        _substring(batch, line, construct, base, negated, value, target)
    elif base == "equals" and not negated:
        _equals(batch, line, construct, value, target)
    elif base == "starts-with" and not negated and isinstance(value, str):
        carry(
            batch,
            target.expected,
            "starts_with",
            starts_with_pattern([value]),
            line=line,
            construct=construct,
        )
    elif base == "regex" and not negated and isinstance(value, str):
        if problem := _regex_problem(value):
            batch.error(line, "assert", f"regex {value!r} is not a valid regular expression: {problem}")
        else:
            carry(batch, target.expected, "pattern", value, line=line, construct=construct)
    elif base == "is-json" and not negated:
        schema = {} if value is None else value
        if not isinstance(schema, dict):
            batch.error(
                line, "assert", f"is-json: the value must be a JSON Schema object, not {kind_of(schema)}"
            )
        else:
            carry(batch, target.expected, "schema", schema, line=line, construct=construct)
    elif base == "is-refusal":
        carry(batch, target.expected, "must_refuse", not negated, line=line, construct=construct)
    elif base in JUDGES and not negated:
        _judge(batch, line, construct, base, value, check.get("threshold"), target)
    elif base in RULE_METRICS and not negated:
        _rule(batch, line, construct, base, check.get("threshold"), target)
    elif base in NEEDS_A_KIND:
        batch.drop(line, construct, NEEDS_A_KIND[base])
    elif negated and base in {"equals", "starts-with", "regex", "is-json", "contains-all", "icontains-all"}:
        batch.drop(line, construct, "no grader negates this check yet")
    else:
        batch.drop(line, construct, "Evalgate has no grader for this assertion type")


def _assert_set(
    batch: Batch, line: int, check: dict[str, Any], target: Target, load: Loader, *, has_threshold: bool
) -> None:
    """An assert-set without a threshold passes when all its assertions pass: the same as
    listing them in the test. With a threshold it is a weighted score, which is not carried."""
    if check.get("threshold") is not None:
        batch.drop(line, "assert assert-set", "its threshold scores the set as a weighted average")
        return
    inner = check.get("assert")
    if not isinstance(inner, list):
        batch.error(line, "assert", "assert-set: `assert` must be a list of assertions")
        return
    translate(batch, [(line, item) for item in inner], target, load, has_threshold=has_threshold)


def _substring(
    batch: Batch, line: int, construct: str, base: str, negated: bool, value: Any, target: Target
) -> None:
    key, arity = SUBSTRINGS[base]
    if isinstance(value, int | float) and not isinstance(value, bool) and arity == "one":
        value = str(value)  # promptfoo compares String(value)
    if arity == "one" and not isinstance(value, str):
        batch.error(line, "assert", f"{base}: the value must be a string, not {kind_of(value)}")
        return
    if arity != "one" and isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]  # promptfoo splits on commas
    if arity != "one" and not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        batch.error(line, "assert", f"{base}: the value must be a list of strings")
        return
    if negated:
        if base not in NEGATED_SUBSTRINGS:
            batch.drop(line, construct, "no grader negates this check yet")
            return
        key = NEGATED_SUBSTRINGS[base]
    carry(
        batch, target.expected, key, value if arity == "one" else list(value), line=line, construct=construct
    )


def _equals(batch: Batch, line: int, construct: str, value: Any, target: Target) -> None:
    if isinstance(value, dict | list):
        # promptfoo parses the output as JSON and compares deeply: a JSON Schema const does.
        carry(batch, target.expected, "json_equals", {"const": value}, line=line, construct=construct)
    elif value is None or isinstance(value, bool):
        batch.error(line, "assert", "equals: a value is required")
    else:
        carry(batch, target.expected, "equals", str(value), line=line, construct=construct)


def _judge(
    batch: Batch, line: int, construct: str, base: str, value: Any, threshold: Any, target: Target
) -> None:
    if not isinstance(value, str) or not value.strip():
        batch.error(line, "assert", f"{base}: the value must be the rubric text")
        return
    if threshold is not None and not (isinstance(threshold, int | float) and 0 <= threshold <= 1):
        batch.error(line, "assert", f"{base}: threshold must be a number from 0 to 1")
        return
    key, name = JUDGES[base]
    carry_judge(
        batch,
        target.expected,
        source="promptfoo",
        key=key,
        text=value,
        threshold=threshold,
        line=line,
        construct=construct,
        name=name,
    )


def _rule(batch: Batch, line: int, construct: str, base: str, threshold: Any, target: Target) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold < 0:
        batch.error(line, "assert", f"{base}: threshold must be a number >= 0")
        return
    metric, unit = RULE_METRICS[base]
    tag = f"promptfoo-{base}-{threshold:g}"
    if tag not in target.tags:
        target.tags.append(tag)
    batch.need_rule(
        RuleSpec(
            name=f"promptfoo {base} <= {threshold:g} {unit}",
            metric=metric,
            threshold=float(threshold),
            scope={"tags": [tag]},
        )
    )


def _regex_problem(pattern: str) -> str | None:
    try:
        re.compile(pattern)
    except re.error as exc:
        return str(exc)
    return None


class _Failed:
    """The value could not be loaded (the loader reported why)."""


_FAILED = _Failed()
FAILED = _FAILED
