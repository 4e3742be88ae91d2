"""Cases back out as files: Evalgate's JSONL and CSV (re-importable as they are), and a
promptfoo config, so a team can run both tools during a move."""

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

import yaml

from datasets_app.importers.base import CASE_FIELDS
from datasets_app.importers.checks import prefixes_of
from datasets_app.importers.promptfoo.render import MESSAGES_TEMPLATE, MESSAGES_VAR


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


def _several(one: str, many: str, values: list[str]) -> list[dict[str, Any]]:
    return [{"type": one, "value": values[0]}] if len(values) == 1 else [{"type": many, "value": values}]


def _asserts(expected: dict[str, Any], tags: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """promptfoo assertions for a case's expected keys, and the keys that have none."""
    asserts: list[dict[str, Any]] = []
    missing: list[str] = []
    for key, value in expected.items():
        judge, _, threshold = key.partition("@")
        if key == "contains":
            asserts += _several("icontains", "icontains-all", _strings(value))
        elif key == "contains_cs":
            asserts += _several("contains", "contains-all", _strings(value))
        elif key in ("contains_any", "contains_any_cs"):
            asserts.append(
                {
                    "type": "icontains-any" if key == "contains_any" else "contains-any",
                    "value": _strings(value),
                }
            )
        elif key in ("not_contains", "not_contains_cs"):
            insensitive = key == "not_contains"
            asserts += _several(
                "not-icontains" if insensitive else "not-contains",
                "not-icontains-any" if insensitive else "not-contains-any",
                _strings(value),
            )
        elif key == "equals":
            asserts.append({"type": "equals", "value": value})
        elif key == "json_equals" and isinstance(value, dict) and set(value) == {"const"}:
            asserts.append({"type": "equals", "value": value["const"]})
        elif key == "pattern":
            asserts.append({"type": "regex", "value": value})
        elif key == "starts_with" and (prefixes := prefixes_of(str(value))) and len(prefixes) == 1:
            asserts.append({"type": "starts-with", "value": prefixes[0]})
        elif key == "starts_with" and isinstance(value, str) and value.startswith("\\A"):
            asserts.append({"type": "regex", "value": "^" + value[2:]})  # JavaScript has no \A
        elif key == "schema" and isinstance(value, dict):
            asserts.append({"type": "is-json", **({"value": value} if value else {})})
        elif key == "must_refuse" and isinstance(value, bool):
            asserts.append({"type": "is-refusal" if value else "not-is-refusal"})
        elif judge in ("llm_rubric", "closedqa") and isinstance(value, str):
            check: dict[str, Any] = {
                "type": "llm-rubric" if judge == "llm_rubric" else "model-graded-closedqa",
                "value": value,
            }
            if threshold:
                check["threshold"] = float(threshold)
            asserts.append(check)
        else:
            missing.append(key)
    for tag in tags:
        for kind in ("latency", "cost"):
            prefix = f"promptfoo-{kind}-"
            if tag.startswith(prefix):
                asserts.append({"type": kind, "threshold": float(tag[len(prefix) :])})
    return asserts, missing


def export_promptfoo(cases: Iterable[dict[str, Any]]) -> tuple[str, list[str]]:
    """A promptfoo config holding the cases as tests, and a note for each expected key that
    no promptfoo assertion checks (Evalgate's normalised exact match, say).

    Each case is one test: its vars, its assertions, and its case fields as metadata (so an
    import of the file gives the same cases back). Cases imported from promptfoo keep their
    prompt templates; the others send their messages through one chat prompt.
    """
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
        asserts, missing = _asserts(case.get("expected") or {}, case.get("tags") or [])
        notes += [f"case {case['key']}: expected.{key} has no promptfoo assertion" for key in missing]
        metadata = {
            name: case[name]
            for name in ("key", "tier", "failure_class", "risk", "pinned", "tags")
            if case.get(name) not in (None, [])
        }
        test: dict[str, Any] = {"vars": variables, "assert": asserts, "metadata": metadata}
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
