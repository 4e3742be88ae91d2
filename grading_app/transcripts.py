"""Foreign transcripts -> Evalgate's trace steps (DESIGN.md "Outputs and traces"): OpenAI chat
messages (tool_calls and the legacy function_call), and OpenAI Responses API items.

Nothing is dropped quietly: an item of a type this module does not know is refused by path.
"""

import contextlib
import json
from typing import Any

from django.core.exceptions import ValidationError

RESPONSES_TYPES = {
    "message",
    "reasoning",
    "function_call",
    "function_call_output",
    "file_search_call",
    "web_search_call",
    "mcp_call",
    "mcp_approval_request",
    "mcp_approval_response",
    "custom_tool_call",
    "custom_tool_call_output",
}
# Item types that exist only in the Responses API: one of them marks a transcript as such.
RESPONSES_ONLY = RESPONSES_TYPES - {"message"}


def _arguments(raw: Any) -> Any:
    # A malformed argument string stays raw: it is evidence, not an input error.
    with contextlib.suppress(ValueError):
        return json.loads(raw) if isinstance(raw, str) else raw
    return raw


def is_chat_transcript(trace: list[Any]) -> bool:
    return bool(trace) and all(isinstance(s, dict) and "role" in s and "type" not in s for s in trace)


def is_responses_transcript(trace: list[Any]) -> bool:
    """Responses API items: typed, with at least one Responses-only type or a message whose
    content is a list of parts (Evalgate's own message steps hold text)."""
    items = [s for s in trace if isinstance(s, dict)]
    return any(
        s.get("type") in RESPONSES_ONLY or (s.get("type") == "message" and isinstance(s.get("content"), list))
        for s in items
    )


def from_chat(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Assistant ``tool_calls`` (and the older ``function_call``) become tool_call steps; ``tool``
    (and ``function``) messages fill in their results."""
    steps: list[dict[str, Any]] = []
    by_call_id: dict[str, dict[str, Any]] = {}
    for message in messages:
        role = message.get("role")
        if role == "tool":
            step = by_call_id.get(message.get("tool_call_id", ""))
            if step is not None:
                step["result"] = message.get("content")
            continue
        if role == "function":
            # The legacy API names the function, not a call id: the latest call of it without a result.
            pending = [s for s in steps if s["type"] == "tool_call" and s["name"] == message.get("name")]
            open_calls = [s for s in pending if "result" not in s]
            if open_calls:
                open_calls[-1]["result"] = message.get("content")
            continue
        if message.get("content"):
            steps.append({"type": "message", "role": role, "content": message["content"]})
        for call in message.get("tool_calls") or []:
            function = call.get("function", {})
            step = {
                "type": "tool_call",
                "name": function.get("name", ""),
                "arguments": _arguments(function.get("arguments", "{}")),
            }
            by_call_id[call.get("id", "")] = step
            steps.append(step)
        if isinstance(message.get("function_call"), dict):
            call = message["function_call"]
            steps.append(
                {
                    "type": "tool_call",
                    "name": call.get("name", ""),
                    "arguments": _arguments(call.get("arguments", "{}")),
                }
            )
    return steps


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


def from_responses(items: list[Any], *, path: str) -> list[dict[str, Any]]:
    """Responses API output (and input) items as trace steps: messages, reasoning summaries,
    function and MCP calls with their outputs, file searches as retrievals, MCP approvals as
    approval steps."""
    steps: list[dict[str, Any]] = []
    calls: dict[str, dict[str, Any]] = {}
    approvals: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(items):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in RESPONSES_TYPES:
            raise ValidationError({f"{path}[{index}].type": f"Unknown Responses API item type {kind!r}."})
        if kind == "message":
            steps.append(
                {
                    "type": "message",
                    "role": item.get("role", "assistant"),
                    "content": _text(item.get("content")),
                }
            )
        elif kind == "reasoning":
            summary = "\n".join(_text([p]) for p in item.get("summary") or [] if isinstance(p, dict))
            steps.append({"type": "message", "role": "reasoning", "content": summary})
        elif kind in ("function_call", "custom_tool_call"):
            step = {
                "type": "tool_call",
                "name": item.get("name", ""),
                "arguments": _arguments(item.get("arguments", item.get("input", "{}"))),
            }
            calls[item.get("call_id", "")] = step
            steps.append(step)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            step = calls.get(item.get("call_id", ""))
            if step is None:
                raise ValidationError(
                    {f"{path}[{index}].call_id": "No function_call before it has this call_id."}
                )
            step["result"] = item.get("output")
        elif kind == "mcp_call":
            step = {
                "type": "tool_call",
                "name": item.get("name", ""),
                "arguments": _arguments(item.get("arguments", "{}")),
            }
            if item.get("output") is not None or item.get("error") is not None:
                step["result"] = item.get("output") if item.get("error") is None else {"error": item["error"]}
            steps.append(step)
        elif kind == "web_search_call":
            steps.append({"type": "tool_call", "name": "web_search", "arguments": item.get("action") or {}})
        elif kind == "file_search_call":
            documents = [
                {"id": str(r.get("file_id") or r.get("filename") or ""), "text": r.get("text", "")}
                for r in item.get("results") or []
                if isinstance(r, dict)
            ]
            steps.append({"type": "retrieval", "documents": documents})
        elif kind == "mcp_approval_request":
            approvals[item.get("id", "")] = item
        else:  # mcp_approval_response
            request = approvals.get(item.get("approval_request_id", ""))
            if request is None:
                raise ValidationError(
                    {f"{path}[{index}].approval_request_id": "No mcp_approval_request before it has this id."}
                )
            steps.append(
                {
                    "type": "approval",
                    "tool": request.get("name", ""),
                    "granted": bool(item.get("approve")),
                    "by": item.get("reason") or "",
                }
            )
    return steps


def final_tool_calls(trace: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool calls after the trace's last assistant message: a turn that ended in tool calls."""
    calls: list[dict[str, Any]] = []
    for step in reversed(trace):
        if step.get("type") == "tool_call":
            calls.append({"name": step.get("name", ""), "arguments": step.get("arguments", {})})
        elif step.get("type") == "message" and step.get("role") == "assistant":
            break
    return list(reversed(calls))


def output_of(output: Any, trace: list[dict[str, Any]]) -> Any:
    """The output a grader sees: the output itself, or, when a final turn was only tool calls
    (no text: output null), those calls as JSON, so the turn is graded rather than missing."""
    if output is not None:
        return output
    calls = final_tool_calls(trace)
    return {"tool_calls": calls} if calls else None
