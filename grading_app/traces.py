"""Traces: validate the step format of DESIGN.md, convert OpenAI transcripts, count steps."""

import json
from typing import Any

from django.core.exceptions import ValidationError

from grading_app.transcripts import from_chat, from_responses, is_chat_transcript, is_responses_transcript

STEP_TYPES = ("message", "tool_call", "retrieval", "approval")


def normalise_trace(trace: Any, *, path: str = "trace") -> list[dict[str, Any]]:
    """Return the trace as a list of typed steps; ValidationError naming the bad step."""
    if trace is None:
        return []
    if not isinstance(trace, list):
        raise ValidationError({path: "A trace is a list of steps."})
    if is_chat_transcript(trace):
        return from_chat(trace)
    if is_responses_transcript(trace):
        return from_responses(trace, path=path)
    for index, step in enumerate(trace):
        where = f"{path}[{index}]"
        if not isinstance(step, dict):
            raise ValidationError({where: "A trace step is an object with a type."})
        if step.get("type") not in STEP_TYPES:
            raise ValidationError({f"{where}.type": f"Must be one of {', '.join(STEP_TYPES)}."})
        if step["type"] in ("tool_call", "approval") and not isinstance(
            step.get("name" if step["type"] == "tool_call" else "tool"), str
        ):
            field = "name" if step["type"] == "tool_call" else "tool"
            raise ValidationError({f"{where}.{field}": "Required: the tool's name."})
    return trace


def count_tool_calls(trace: list[dict[str, Any]]) -> int:
    return sum(1 for step in trace if step.get("type") == "tool_call")


def tool_sequence(trace: list[dict[str, Any]]) -> list[str]:
    return [step.get("name", "") for step in trace if step.get("type") == "tool_call"]


def _pretty(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _document(document: Any) -> dict[str, str]:
    if isinstance(document, dict):
        return {"id": str(document.get("id", "")), "text": _pretty(document.get("text", ""))}
    return {"id": "", "text": _pretty(document)}


def timeline(trace: Any) -> list[dict[str, Any]]:
    """The trace as display-ready steps for the admin's timeline: JSON pretty-printed, retrieved
    documents as id and text; a stored step of an unknown shape is shown raw, never dropped."""
    steps = trace if isinstance(trace, list) else [trace] if trace else []
    shown: list[dict[str, Any]] = []
    for step in steps:
        kind = step.get("type") if isinstance(step, dict) else None
        if kind == "message":
            item = {"role": step.get("role", ""), "content": _pretty(step.get("content", ""))}
            item["done"] = step.get("done") is True  # a simulated user's closing words
        elif kind == "tool_call":
            item = {"name": step.get("name", ""), "arguments": _pretty(step.get("arguments", {}))}
            item["result"] = None if step.get("result") is None else _pretty(step["result"])
        elif kind == "retrieval":
            item = {"documents": [_document(d) for d in step.get("documents") or []]}
        elif kind == "approval":
            item = {"tool": step.get("tool", ""), "granted": step.get("granted"), "by": step.get("by", "")}
        else:
            kind, item = "raw", {"raw": _pretty(step)}
        shown.append({"type": kind, **item})
    return shown
