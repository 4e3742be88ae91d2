"""Cases back out as files: Evalgate's JSONL and CSV (re-importable as they are), and a
promptfoo config, so a team can run both tools during a move."""

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from datasets_app.importers.base import CASE_FIELDS
from evalproject.lazy import lazy_module

yaml = lazy_module("yaml")  # only a promptfoo export writes YAML


def _export_fields(case: dict[str, Any]) -> dict[str, Any]:
    """The case keys present, in a fixed order; an absent or None status is left out."""
    fields = {name: case[name] for name in CASE_FIELDS if name in case}
    if fields.get("status") is None:
        fields.pop("status", None)
    return fields


def export_jsonl(cases: Iterable[dict[str, Any]]) -> str:
    """One JSON object per case, in the shape parse_cases(fmt="jsonl") reads back."""
    return "".join(json.dumps(_export_fields(case), ensure_ascii=False) + "\n" for case in cases)


def export_csv(cases: Iterable[dict[str, Any]]) -> str:
    """A header row and one row per case; tags, input and expected are JSON cells."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CASE_FIELDS)
    for case in cases:
        fields = _export_fields(case)
        writer.writerow([_csv_cell(name, fields.get(name)) for name in CASE_FIELDS])
    return out.getvalue()


def _csv_cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name == "pinned":
        return "true" if value else "false"
    # JSON even for tags: a tag may itself contain a semicolon.
    return json.dumps(value, ensure_ascii=False) if name in ("tags", "input", "expected") else str(value)


def _strings(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _several(one: str, many: str, values: list[str]) -> dict[str, Any]:
    return {"type": one, "value": values[0]} if len(values) == 1 else {"type": many, "value": values}


def _entries(value: Any) -> list[tuple[Any, dict[str, Any]]]:
    """An object-form key's assertions as (value, options), options holding `negate` too."""
    items = (
        value if isinstance(value, list) and value and all(isinstance(v, dict) for v in value) else [value]
    )
    found = []
    for item in items:
        if isinstance(item, dict):
            found.append((item.get("value", True), {k: v for k, v in item.items() if k != "value"}))
        else:
            found.append((item, {}))
    return found


def _substring_assert(key: str, value: Any, options: dict[str, Any]) -> dict[str, Any]:
    values, sensitive, negate = (
        _strings(value),
        options.get("case_sensitive", True),
        options.get("negate", False),
    )
    prefix = ("not-" if negate else "") + ("" if sensitive else "i")
    if key == "contains_all":
        return _several(f"{prefix}contains", f"{prefix}contains-all", values)
    return {"type": f"{prefix}contains-any", "value": values}


SCORE_OPTIONS = {"negate", "threshold", "metric"}
# promptfoo's levenshtein counts UTF-16 units: only such a check is its levenshtein.
LEVENSHTEIN_OPTIONS = {"negate", "threshold", "units"}


def _object_form_asserts(key: str, value: Any) -> list[dict[str, Any]] | None:
    """promptfoo assertions for an object-form key, or None when promptfoo has no such check."""
    asserts = []
    for one, options in _entries(value):
        negate = "not-" if options.get("negate") else ""
        if key in ("contains_all", "contains_any"):
            asserts.append(_substring_assert(key, one, options))
        elif key in ("equals", "starts_with") and set(options) <= {"negate"}:
            asserts.append({"type": negate + key.replace("_", "-"), "value": one})
        elif key in ("is_json", "contains_json") and one is True and set(options) <= {"negate", "schema"}:
            check = {"type": negate + key.replace("_", "-")}
            asserts.append({**check, "value": options["schema"]} if options.get("schema") else check)
        elif key == "length" and options.get("unit") == "words" and one is True:
            bounds = {k: v for k, v in options.items() if k in ("min", "max")}
            exact = bounds.get("min") is not None and bounds.get("min") == bounds.get("max")
            asserts.append({"type": negate + "word-count", "value": bounds["min"] if exact else bounds})
        elif key == "levenshtein" and options.get("units") == "utf16" and set(options) <= LEVENSHTEIN_OPTIONS:
            check = {"type": negate + "levenshtein", "value": one}
            asserts.append({**check, "threshold": options["threshold"]} if "threshold" in options else check)
        elif key in ("rouge_n", "similar") and set(options) <= SCORE_OPTIONS:
            metric = f":{options['metric']}" if options.get("metric", "cosine") != "cosine" else ""
            check = {"type": negate + {"rouge_n": "rouge-n"}.get(key, key) + metric, "value": one}
            asserts.append({**check, "threshold": options["threshold"]} if "threshold" in options else check)
        else:
            return None
    return asserts


def _asserts(expected: dict[str, Any], tags: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """promptfoo assertions for a case's expected keys, and the keys that have none."""
    asserts: list[dict[str, Any]] = []
    missing: list[str] = []
    for key, value in expected.items():
        judge, _, threshold = key.partition("@")
        if key == SET_KEY:
            continue  # export_promptfoo places it: the test's threshold, or an assert-set
        if key == "contains":
            asserts.append(_several("icontains", "icontains-all", _strings(value)))
        elif key == "not_contains":
            asserts.append(_several("not-icontains", "not-icontains-any", _strings(value)))
        elif key in ("pattern", "not_pattern", "js_pattern", "not_js_pattern"):
            asserts.append({"type": "not-regex" if key.startswith("not_") else "regex", "value": value})
        elif key in ("must_refuse", "is_refusal") and isinstance(value, bool):
            asserts.append({"type": "is-refusal" if value else "not-is-refusal"})
        elif judge in ("llm_rubric", "closedqa") and isinstance(value, str):
            check: dict[str, Any] = {
                "type": "llm-rubric" if judge == "llm_rubric" else "model-graded-closedqa",
                "value": value,
            }
            if threshold:
                check["threshold"] = float(threshold)
            asserts.append(check)
        elif (found := _object_form_asserts(key, value)) is not None:
            asserts += found
        else:
            missing.append(key)
    for tag in tags:
        for kind in ("latency", "cost"):
            prefix = f"promptfoo-{kind}-"
            if tag.startswith(prefix):
                asserts.append({"type": kind, "threshold": float(tag[len(prefix) :])})
    return asserts, missing


def _dialect_notes(expected: dict[str, Any], where: str) -> list[str]:
    """Python patterns written as promptfoo's regex, which JavaScript's RegExp reads (some of
    them otherwise: `$` before a final newline, `\\d` on other digits...)."""
    return [
        f"{where}: expected.{key} is a Python regular expression; promptfoo matches it as "
        "JavaScript's RegExp, which decides some patterns otherwise"
        for key in ("pattern", "not_pattern")
        if key in expected
    ]


SET_KEY = "assertion_set"
# promptfoo scores these by their metric (is-refusal: 0 for a blank answer); every other
# assertion type scores 1 or 0.
SCORED_TYPES = {
    prefix + kind
    for prefix in ("", "not-")
    for kind in ("rouge-n", "similar", "similar:cosine", "similar:dot", "similar:euclidean", "is-refusal")
}


def weighted_asserts(value: dict[str, Any], where: str, notes: list[str]) -> dict[str, Any]:
    """An assertion_set as a promptfoo assert-set (its members, weights and threshold); a note
    for each member promptfoo cannot check, or scores otherwise than the set does."""
    found: list[dict[str, Any]] = []
    for i, member in enumerate(value.get("assertions") or []):
        here = f"{where}.assertions[{i}]"
        if not isinstance(member, dict):
            notes.append(f"{here} is not an assertion")
            continue
        if "assertions" in member:
            asserts = [weighted_asserts(member, here, notes)]
        else:
            asserts, missing = _asserts(member.get("expected") or {}, [])
            notes += [f"{here}: expected.{key} has no promptfoo assertion" for key in missing]
            notes += _dialect_notes(member.get("expected") or {}, here)
            for check in asserts:
                if (check["type"] not in SCORED_TYPES) != bool(member.get("binary")):
                    notes.append(f"{here}: promptfoo scores {check['type']} otherwise than this set does")
        for check in asserts:
            if "weight" in member:
                check["weight"] = member["weight"]
        found += asserts
    result: dict[str, Any] = {"type": "assert-set", "assert": found}
    if value.get("threshold") is not None:
        result["threshold"] = value["threshold"]
    return result


def export_promptfoo(cases: Iterable[dict[str, Any]]) -> tuple[str, list[str]]:
    """A promptfoo config holding the cases as tests, and a note for each expected key that
    no promptfoo assertion checks (Evalgate's normalised exact match, say).

    Each case is one test: its vars, its assertions, and its case fields as metadata (so an
    import of the file gives the same cases back). Cases imported from promptfoo keep their
    prompt templates; the others send their messages through one chat prompt.
    """
    # The promptfoo reader brings jinja2: imported when a promptfoo file is written or read.
    from datasets_app.importers.promptfoo.render import MESSAGES_TEMPLATE, MESSAGES_VAR

    templates: dict[str, str] = {}
    tests: list[dict[str, Any]] = []
    notes: list[str] = []
    case_list = list(cases)
    for case in case_list:
        template = case["input"].get("prompt_template") or MESSAGES_TEMPLATE
        templates.setdefault(template, f"p{len(templates) + 1}")
    for case in case_list:
        case_input = case["input"]
        template = case_input.get("prompt_template") or MESSAGES_TEMPLATE
        variables = dict(case_input.get("vars") or {})
        if template == MESSAGES_TEMPLATE:
            variables[MESSAGES_VAR] = case_input.get("messages") or []
        expected = case.get("expected") or {}
        asserts, missing = _asserts(expected, case.get("tags") or [])
        notes += [f"case {case['key']}: expected.{key} has no promptfoo assertion" for key in missing]
        notes += _dialect_notes(expected, f"case {case['key']}")
        notes += [
            f"case {case['key']}: input.{key} (a multi-turn conversation) is not exported; "
            "only its opening messages are"
            for key in ("turns", "simulated_user")
            if key in case_input
        ]
        threshold = None
        if isinstance(expected.get(SET_KEY), dict):
            found = weighted_asserts(expected[SET_KEY], f"case {case['key']}: expected.{SET_KEY}", notes)
            if asserts and found.get("threshold") is not None:
                # Other checks must pass on their own: the weighted score is an assert-set of its own.
                asserts.append(found)
            else:
                threshold = found.get("threshold")
                asserts = found["assert"] + asserts
        metadata = {
            name: case[name]
            for name in ("key", "tier", "failure_class", "risk", "pinned", "tags")
            if case.get(name) not in (None, [])
        }
        test: dict[str, Any] = {"vars": variables, "assert": asserts, "metadata": metadata}
        if threshold is not None:
            test["threshold"] = threshold
        if len(templates) > 1:
            test["prompts"] = [templates[template]]
        # promptfoo would run a test once per item of a list var: the messages var is one value.
        if any(isinstance(value, list) for value in variables.values()):
            test["options"] = {"disableVarExpansion": True}
        tests.append(test)
    config = {
        "description": "Exported from Evalgate",
        "prompts": [{"raw": template, "label": label} for template, label in templates.items()],
        "tests": tests,
    }
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100)
    return text, notes
