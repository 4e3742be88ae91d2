"""promptfoo assertions -> keys of a case's `expected` (read by graders), judge rubric drafts
and gate rules; every assertion that cannot be carried is recorded as dropped, with its line.

What each assertion type becomes is the table in README ("Moving from promptfoo").
"""

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

from datasets_app.importers.base import Batch, RuleSpec, kind_of
from datasets_app.importers.checks import carry, carry_judge
from datasets_app.importers.promptfoo.csv_tests import comma_values, finite_number

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

# promptfoo's i- types lower-case both texts with JavaScript's toLowerCase ("STRASSE" does not
# contain "straße"): the substring graders' lowercase mapping, not Unicode case folding.
JS_CASE = {"case_sensitive": False, "case_mapping": "lowercase"}
# Substring types: (expected key, per-case options, how the value is read).
SUBSTRINGS = {
    "contains": ("contains_all", {}, "one"),
    "icontains": ("contains_all", JS_CASE, "one"),
    "contains-all": ("contains_all", {}, "all"),
    "icontains-all": ("contains_all", JS_CASE, "all"),
    "contains-any": ("contains_any", {}, "any"),
    "icontains-any": ("contains_any", JS_CASE, "any"),
}
# not- variants of substring types: "none of these" (a negated contains_any), or a negated
# check (not-contains-all passes unless every string is there).
NEGATED_SUBSTRINGS = {
    "contains": ("contains_any", {"negate": True}),
    "icontains": ("contains_any", {**JS_CASE, "negate": True}),
    "contains-any": ("contains_any", {"negate": True}),
    "icontains-any": ("contains_any", {**JS_CASE, "negate": True}),
    "contains-all": ("contains_all", {"negate": True}),
    "icontains-all": ("contains_all", {**JS_CASE, "negate": True}),
}
FOREIGN_CODE = {"javascript", "python", "ruby", "webhook"}
# Reference-score types: (expected key, promptfoo's default threshold). A CSV's `similar`
# cell says 0.8 itself (promptfoo's CSV reader's default); a config's takes 0.75.
SCORES = {
    "levenshtein": ("levenshtein", None),
    "rouge-n": ("rouge_n", 0.75),
    "similar": ("similar", 0.75),
    "similar:cosine": ("similar", 0.75),
    "similar:dot": ("similar", 0.75),
    "similar:euclidean": ("similar", 0.75),
}
# promptfoo compares these against a list of references too (the closest counts).
LISTS = {"similar", "similar:cosine", "similar:dot", "similar:euclidean"}
JUDGES = {
    "llm-rubric": ("llm_rubric", "promptfoo llm-rubric"),
    "model-graded-closedqa": ("closedqa", "promptfoo model-graded-closedqa"),
}
RULE_METRICS = {"latency": ("latency_p95_ms", "ms"), "cost": ("cost_per_case_usd", "USD")}
TOOL_CALL_TYPES = ("is-valid-openai-tools-call", "is-valid-openai-function-call")
# Types whose promptfoo handler never reads `inverse`: their not- form checks the same thing.
IGNORES_NOT = {*TOOL_CALL_TYPES, "model-graded-closedqa"}


@dataclasses.dataclass
class Target:
    """Where one test's assertions land: its expected keys and its tags; the provider's tool
    definitions, for tool-call assertions."""

    expected: dict[str, Any]
    tags: list[str]
    tools: list[Any] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Placed:
    """An assertion where it is written: its file ("" for the config), its line, and the lines
    of an assert-set's own assertions."""

    file: str
    line: int
    check: Any
    inner: tuple[int, ...] = ()

    def members(self) -> list["Placed"]:
        """An assert-set's assertions, each at its own line (the set's, where none is known)."""
        inner = self.check.get("assert") if isinstance(self.check, dict) else None
        return [
            Placed(self.file, self.inner[i] if i < len(self.inner) else self.line, member)
            for i, member in enumerate(inner if isinstance(inner, list) else [])
        ]


Loader = Callable[[Any, int], Any]


def translate(batch: Batch, asserts: list[Placed], target: Target, load: Loader) -> None:
    """Carry each assertion of a test into ``target``, or record it as dropped."""
    for placed in asserts:
        with batch.in_file(placed.file):
            translate_one(batch, placed, target, load)


def check_fields(batch: Batch, line: int, check: Any) -> bool:
    """Whether ``check`` is an assertion this importer can read: a mapping with a type, known
    fields, and numbers where promptfoo takes numbers. Reports what is wrong when not."""
    if not isinstance(check, dict) or not isinstance(check.get("type"), str):
        batch.error(line, "assert", f"an assertion must be a mapping with a type, not {kind_of(check)}")
        return False
    kind = check["type"]
    unknown = sorted(set(check) - ASSERT_FIELDS)
    if unknown:
        batch.error(line, "assert", f"{kind}: unknown field(s) {', '.join(unknown)}")
        return False
    weight = check.get("weight")
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int | float)):
        batch.error(line, "assert", f"{kind}: weight must be a number, not {kind_of(weight)}")
        return False
    threshold = check.get("threshold")
    if kind == "assert-set" and threshold is not None and not is_number(threshold):
        batch.error(line, "assert", f"assert-set: threshold must be a number, not {kind_of(threshold)}")
        return False
    return True


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def translate_one(batch: Batch, placed: Placed, target: Target, load: Loader) -> None:
    line, check = placed.line, placed.check
    if not check_fields(batch, line, check):
        return
    kind = check["type"]
    construct = f"assert {kind}"
    tag_metric(check, target)
    if kind == "assert-set":
        _assert_set(batch, placed, target, load)
        return
    if check.get("transform") or check.get("contextTransform"):
        batch.drop(line, construct, "its transform is JavaScript or Python, and no foreign code is run")
        return
    for field in ("config", "provider", "rubricPrompt"):
        if check.get(field):
            batch.drop(line, construct, f"{field} is not carried (the judge and its prompt are Evalgate's)")
            return
    negated = kind.startswith("not-")
    base = kind[4:] if negated else kind
    if negated and base in IGNORES_NOT:
        negated = False  # promptfoo (0.121) runs these as if the not- were not written
    value = load(check.get("value"), line)
    if value is FAILED:
        return
    negate = {"negate": True} if negated else {}
    if base in FOREIGN_CODE:
        batch.drop(line, construct, "it runs JavaScript, Python or a webhook, and no foreign code is run")
    elif base in SUBSTRINGS:
        _substring(batch, line, construct, base, negated, value, target)
    elif base in ("equals", "starts-with"):
        _text_check(batch, line, construct, base, value, negate, target)
    elif base == "regex" and isinstance(value, str):
        if problem := _regex_problem(value):
            batch.error(line, "assert", f"regex {value!r} is not a valid regular expression: {problem}")
        else:
            key = "not_pattern" if negated else "pattern"
            carry(batch, target.expected, key, value, line=line, construct=construct)
    elif base in ("is-json", "contains-json"):
        if value is not None and not isinstance(value, dict):
            batch.error(
                line, "assert", f"{base}: the value must be a JSON Schema object, not {kind_of(value)}"
            )
            return
        if value and "$schema" not in value:
            value = {"$schema": AJV_DEFAULT_DIALECT, **value}
        if value and _asserts_format(value):
            batch.drop(
                line,
                f"{construct} format",
                "promptfoo asserts the schema's `format` keywords (ajv-formats); they are kept but "
                "not asserted, as Evalgate's formats differ from ajv's",
            )
        carry(
            batch,
            target.expected,
            base.replace("-", "_"),
            True,
            line=line,
            construct=construct,
            options={"schema": value, **negate},
        )
    elif base in SCORES and (isinstance(value, str) or (base in LISTS and _texts(value))):
        key, default = SCORES[base]
        threshold = check.get("threshold")
        if isinstance(threshold, str) and finite_number(threshold) is not None:
            threshold = finite_number(threshold)  # JavaScript compares "3" as 3
        if threshold is not None and not is_number(threshold):
            batch.error(line, "assert", f"{base}: threshold must be a number, not {kind_of(threshold)}")
            return
        if threshold is None and default is not None:
            threshold = default  # promptfoo's own default, which the grader's may not be
        if base == "levenshtein" and threshold is not None:
            if threshold < 0:
                outcome = "passes" if negated else "fails"
                batch.drop(
                    line,
                    construct,
                    f"threshold {threshold:g}: no edit distance is below 0, so it always {outcome}",
                )
                return
            threshold = math.floor(threshold)  # distances are whole: at most 2.5 is at most 2
        metric = base.partition(":")[2]
        options = {"threshold": threshold, "metric": metric if metric in ("dot", "euclidean") else None}
        if base == "levenshtein":
            options["units"] = "utf16"  # promptfoo counts edits in JavaScript string units
        options |= negate
        carry(batch, target.expected, key, value, line=line, construct=construct, options=options)
    elif base == "word-count":
        _word_count(batch, line, construct, value, negate, target)
    elif base == "is-refusal":
        carry(batch, target.expected, "is_refusal", not negated, line=line, construct=construct)
    elif base in TOOL_CALL_TYPES and not negated:
        _tool_definitions(batch, line, construct, target)
    elif base in JUDGES and not negated:
        _judge(batch, line, construct, base, value, check.get("threshold"), target)
    elif base in RULE_METRICS and not negated:
        _rule(batch, line, construct, base, check.get("threshold"), target)
    elif negated and base == "llm-rubric":
        batch.drop(
            line,
            construct,
            "promptfoo inverts the judge's verdict; an Evalgate judge's verdict is the one its "
            "rubric's owner signs off and reviewers' labels are measured against, so it is never "
            "inverted (write the rubric for what must hold)",
        )
    elif negated and base in RULE_METRICS:
        batch.drop(
            line,
            construct,
            f"promptfoo passes it only when the test takes more than {check.get('threshold')} "
            f"{RULE_METRICS[base][1]}; gate rules bound latency and cost from above only",
        )
    else:
        batch.drop(line, construct, "Evalgate has no grader for this assertion type")


def tag_metric(check: dict[str, Any], target: Target) -> None:
    """A named metric groups assertions into one score in promptfoo's report; here a tag on the
    case, so gate rules and run pages can scope to it."""
    if isinstance(check.get("metric"), str) and check["metric"]:
        tag = f"metric:{check['metric']}"
        if tag not in target.tags:
            target.tags.append(tag)


def set_fields(batch: Batch, placed: Placed) -> bool:
    """Whether an assert-set has its list of assertions; a `config` of the set (which promptfoo
    never hands to its assertions) is noted as not carried."""
    if not isinstance(placed.check.get("assert"), list):
        batch.error(placed.line, "assert", "assert-set: `assert` must be a list of assertions")
        return False
    if placed.check.get("config"):
        batch.drop(placed.line, "assert assert-set", "its config is not carried")
    return True


def _assert_set(batch: Batch, placed: Placed, target: Target, load: Loader) -> None:
    """An assert-set carried here passes when all its assertions pass (no threshold, no weight
    0 inside: promptfoo.weighted carries the others), the same as listing them in the test."""
    if not set_fields(batch, placed):
        return
    for member in placed.members():
        if nested_set(batch, member):
            continue
        translate_one(batch, member, target, load)


def nested_set(batch: Batch, member: Placed) -> bool:
    """An assert-set inside an assert-set, which promptfoo cannot run (it fails the test with
    "Unknown assertion type: assert-set"): an error here too."""
    if isinstance(member.check, dict) and member.check.get("type") == "assert-set":
        batch.error(member.line, "assert", "an assert-set inside an assert-set: promptfoo cannot run it")
        return True
    return False


def _substring(
    batch: Batch, line: int, construct: str, base: str, negated: bool, value: Any, target: Target
) -> None:
    key, options, arity = SUBSTRINGS[base]
    if isinstance(value, int | float) and not isinstance(value, bool) and arity == "one":
        value = str(value)  # promptfoo compares String(value)
    if arity == "one" and not isinstance(value, str):
        batch.error(line, "assert", f"{base}: the value must be a string, not {kind_of(value)}")
        return
    if arity != "one" and isinstance(value, str):
        try:
            value = comma_values(value)  # promptfoo splits on commas, keeping quoted fields whole
        except ValueError as exc:
            batch.error(line, "assert", f"{base}: {exc} in {value!r} (promptfoo refuses it)")
            return
    if arity != "one" and not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        batch.error(line, "assert", f"{base}: the value must be a list of strings")
        return
    values = [value] if arity == "one" else list(value)
    if negated:
        key, options = NEGATED_SUBSTRINGS[base]
    carry(batch, target.expected, key, values, line=line, construct=construct, options=options)


def _text_check(
    batch: Batch, line: int, construct: str, base: str, value: Any, negate: dict[str, Any], target: Target
) -> None:
    """equals (text character for character, or a JSON value compared as JSON) and starts-with."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # promptfoo compares the output text with String(value)
    if base == "starts-with" and not isinstance(value, str):
        batch.error(line, "assert", f"starts-with: the value must be a string, not {kind_of(value)}")
    elif value is None or isinstance(value, bool):
        batch.error(line, "assert", f"{base}: a value is required")
    else:
        key = "equals" if base == "equals" else "starts_with"
        carry(batch, target.expected, key, value, line=line, construct=construct, options=negate)


def _word_count(
    batch: Batch, line: int, construct: str, value: Any, negate: dict[str, Any], target: Target
) -> None:
    """promptfoo's word-count (an exact count, or {min, max}) is the length grader in words."""
    if isinstance(value, int) and not isinstance(value, bool):
        bounds = {"min": value, "max": value}
    elif isinstance(value, dict) and set(value) <= {"min", "max"} and value:
        bounds = dict(value)
    else:
        batch.error(line, "assert", "word-count: the value must be a number or {min, max}")
        return
    carry(
        batch,
        target.expected,
        "length",
        True,
        line=line,
        construct=construct,
        options={**bounds, "unit": "words", **negate},
    )


def _tool_definitions(batch: Batch, line: int, construct: str, target: Target) -> None:
    """promptfoo checks tool calls against the tools its provider declares: those definitions
    become the case's expected.tool_definitions, read by the tool_schema grader."""
    if not target.tools:
        batch.drop(line, construct, "the config's provider declares no tools or functions to check against")
        return
    carry(batch, target.expected, "tool_definitions", target.tools, line=line, construct=construct)


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


# promptfoo validates is-json / contains-json schemas with Ajv, whose default dialect is draft-07
# (2020-12, Evalgate's default, reads `items` lists, `dependencies` and `$ref` siblings otherwise).
AJV_DEFAULT_DIALECT = "http://json-schema.org/draft-07/schema#"
# Keywords whose value maps names to subschemas (a property may be called "format").
_SCHEMA_MAPS = {"properties", "patternProperties", "definitions", "$defs", "dependentSchemas", "dependencies"}
_NOT_SCHEMAS = {"enum", "const", "default", "examples", "required"}


def _asserts_format(schema: Any) -> bool:
    """Whether a JSON Schema uses the `format` keyword anywhere."""
    if isinstance(schema, list):
        return any(_asserts_format(item) for item in schema)
    if not isinstance(schema, dict):
        return False
    if isinstance(schema.get("format"), str):
        return True
    for keyword, value in schema.items():
        if keyword in _SCHEMA_MAPS and isinstance(value, dict):
            if any(_asserts_format(sub) for sub in value.values()):
                return True
        elif keyword not in _NOT_SCHEMAS and _asserts_format(value):
            return True
    return False


def _texts(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _regex_problem(pattern: str) -> str | None:
    try:
        re.compile(pattern)
    except re.error as exc:
        return str(exc)
    return None


class _Failed:
    """The value could not be loaded (the loader reported why)."""


FAILED = _Failed()
