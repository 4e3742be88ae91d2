"""What a case result's admin page shows above its trace: the verdict, the grades behind it, the
case (input and expected, in words) and the output, and the production signals.

Plain data for the template, which escapes all of it: outputs, rationales and judge answers
are untrusted text.
"""

import json
from typing import Any

from django.contrib.admin import AdminSite
from django.db.models import Model
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from grading_app.admin_site.outcomes import Outcome, grade_outcome
from grading_app.choices import RubricState
from grading_app.models import CaseResult, Grade

# Conventional `expected` keys (DESIGN.md section 4) in words, in the order a reader wants them.
EXPECTED_WORDS = {
    "answer": "Reference answer",
    "contains": "Must contain",
    "not_contains": "Must not contain",
    "pattern": "Must match the pattern",
    "schema": "Must satisfy the JSON Schema",
    "number": "Numeric answer",
    "must_refuse": "Must refuse",
    "must_abstain": "Must abstain (say it does not know)",
    "citations": "Must cite",
    "tools": "Expected tool calls",
    "forbidden_tools": "Must not call",
    "max_tool_calls": "At most this many tool calls",
    "requires_approval": "Only after a granted approval",
}
# Read together with a key above rather than on their own line.
FOLDED_KEYS = {"tolerance", "tools_ordered"}


def pretty(value: Any) -> str:
    """JSON, indented and readable (never a Python repr); text stays text."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def output_shown(output: Any) -> dict[str, Any]:
    """The output as the candidate gave it: text, or JSON (an object, list, number...)."""
    if output is None:
        return {"kind": "none", "text": ""}
    return {"kind": "text" if isinstance(output, str) else "json", "text": pretty(output)}


def conversation(case_input: Any) -> dict[str, Any]:
    """The input's chat messages as (role, content), and whatever else it holds as JSON."""
    if not isinstance(case_input, dict):
        return {"messages": [], "rest": pretty(case_input) if case_input not in (None, "") else ""}
    raw = case_input.get("messages")
    messages = raw if isinstance(raw, list) else []
    shown = [
        {"role": m.get("role", ""), "content": pretty(m.get("content", ""))}
        for m in messages
        if isinstance(m, dict)
    ]
    rest = {k: v for k, v in case_input.items() if k != "messages" or not isinstance(v, list)}
    # A message of an unknown shape is kept, raw, with the other keys rather than dropped.
    odd = [m for m in messages if not isinstance(m, dict)]
    if odd:
        rest["messages (unrecognised)"] = odd
    return {"messages": shown, "rest": pretty(rest) if rest else ""}


def _items(value: Any) -> list[str]:
    if isinstance(value, list):
        return [pretty(v) for v in value]
    return [pretty(value)]


def expected_in_words(expected: Any) -> list[dict[str, Any]]:
    """One row per conventional key present: a label and its values (``block``: shown as a
    paragraph, for answers and JSON; otherwise inline). Other keys are named in a last row."""
    if not isinstance(expected, dict):
        return []
    rows: list[dict[str, Any]] = []
    for key, label in EXPECTED_WORDS.items():
        if key not in expected:
            continue
        value = expected[key]
        if key in ("must_refuse", "must_abstain"):
            items, block = ["yes" if value else "no"], False
        elif key == "number":
            tolerance = expected.get("tolerance")
            items = [f"{value} ± {tolerance}" if tolerance is not None else pretty(value)]
            block = False
        elif key == "tools" and expected.get("tools_ordered"):
            label, items, block = f"{label}, in this order", _items(value), False
        elif key in ("answer", "schema"):
            items, block = [pretty(value)], True
        else:
            items, block = _items(value), False
        rows.append({"label": label, "items": items, "block": block})
    others = sorted(k for k in expected if k not in EXPECTED_WORDS and k not in FOLDED_KEYS)
    if others:
        rows.append({"label": "Other keys (see the JSON)", "items": others, "block": False})
    return rows


def _names(grades: list[Grade]) -> str:
    return ", ".join(g.grader.slug for g in grades)


def verdict(result: CaseResult, grades: list[Grade]) -> dict[str, Any]:
    """The page's headline: the outcome (as the list computes it) and why, in a sentence."""
    outcome = Outcome(result.outcome)
    failed = [g for g in grades if grade_outcome(g) == Outcome.FAILED]
    errored = [g for g in grades if grade_outcome(g) == Outcome.ERRORED]
    n = len(grades)
    if result.missing:
        why = "No output was produced or submitted, so nothing was graded."
    elif result.error:
        why = "The candidate's call failed, so nothing was graded."
    elif outcome == Outcome.FAILED:
        why = f"{len(failed)} of {n} grade{'s' if n != 1 else ''} failed: {_names(failed)}."
        if errored:
            why += f" {len(errored)} errored: {_names(errored)}."
    elif outcome == Outcome.ERRORED:
        why = f"{len(errored)} of {n} grade{'s' if n != 1 else ''} could not be decided: {_names(errored)}."
        why += " None failed."
    elif outcome == Outcome.PASSED:
        why = "Its one grade passed." if n == 1 else f"All {n} grades passed."
    else:
        why = (
            "No grader applied to this case: a grader skips cases whose expected lacks the key it "
            "reads, and a grader limited to some failure classes skips the others."
        )
    return {"outcome": outcome.value, "label": outcome.label, "why": why, "error": result.error}


def admin_url(request: HttpRequest, site: AdminSite, obj: Model | None) -> str | None:
    """The object's admin page, if this user may see it there (else the page names it unlinked)."""
    if obj is None or not site.is_registered(type(obj)):
        return None
    if not site.get_model_admin(type(obj)).has_view_permission(request, obj):
        return None
    meta = obj._meta
    try:
        return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return None


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def grade_rows(request: HttpRequest, site: AdminSite, grades: list[Grade]) -> list[dict[str, Any]]:
    """The grades, failures first, then errors, then passes; each with what its grader said."""
    order = {Outcome.FAILED: 0, Outcome.ERRORED: 1, Outcome.PASSED: 2}
    rows = []
    for grade in sorted(grades, key=lambda g: (order[grade_outcome(g)], g.grader.slug)):
        version = grade.rubric_version
        outcome = grade_outcome(grade)
        rows.append(
            {
                "outcome": outcome.value,
                "label": outcome.label,
                "grader": grade.grader,
                "grader_url": admin_url(request, site, grade.grader),
                "score": _score(grade.score),
                "rationale": grade.rationale,
                "error": grade.error,
                "rubric_version": version,
                "rubric_version_state": version.get_state_display() if version else "",
                # Only approved versions count in gate checks (DESIGN.md section 4): say so here.
                "rubric_version_approved": version is not None and version.state == RubricState.APPROVED,
                "rubric_version_url": admin_url(request, site, version),
                "cached": grade.cached,
                "raw_response": None if grade.raw_response is None else pretty(grade.raw_response),
            }
        )
    return rows


def _number(value: float | int | None, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{unit}"


def _flag(value: bool | None, detected: bool = False) -> str:
    shown = "-" if value is None else ("yes" if value else "no")
    return f"{shown} (detected, not reported)" if detected else shown


def _cost(value: float | None) -> str:
    if value is None:
        return "-"
    shown = f"{value:.6f}".rstrip("0").rstrip(".")
    return "< $0.000001" if shown == "0" and value > 0 else f"${shown}"


def signals(result: CaseResult) -> list[tuple[str, str]]:
    """The production signals of the result, labelled for people (not as column names)."""
    tokens = "-"
    if result.input_tokens is not None or result.output_tokens is not None:
        tokens = f"{_number(result.input_tokens)} in, {_number(result.output_tokens)} out"
    return [
        ("Latency", _number(result.latency_ms, " ms")),
        ("TTFT", _number(result.ttft_ms, " ms")),
        ("Tokens", tokens),
        ("Cost", _cost(result.cost_usd)),
        ("Tool calls", str(result.tool_calls)),
        ("Trace steps", str(result.trace_steps)),
        ("Retries", str(result.retries)),
        ("Refused", _flag(result.refused, result.refused_detected)),
        ("Escalated", _flag(result.escalated, result.escalated_detected)),
    ]


def case_as_graded(result: CaseResult) -> dict[str, Any]:
    """The case's input and expected as they were at the revision this result was graded on:
    a later edit of the case must not make an old verdict look wrong (or right)."""
    case = result.case
    current = {"input": case.input, "expected": case.expected, "note": ""}
    if case.revision == result.case_revision:
        return current
    then = case.history.filter(revision=result.case_revision).order_by("-history_date").first()
    if then is None:
        current["note"] = (
            f"Graded on revision {result.case_revision} of the case, which its history no longer "
            f"holds: shown is the current revision {case.revision}."
        )
        return current
    return {
        "input": then.input,
        "expected": then.expected,
        "note": (
            f"Graded on revision {result.case_revision} of the case, shown here as it was then; "
            f"the case is now at revision {case.revision}."
        ),
    }
