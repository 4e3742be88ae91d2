"""The openai_chat target: ask a chat model, record its answer, tool calls and timings.

A multi-turn case calls it once per user turn (``turn``): the assistant's replies and its tool
calls accumulate in the messages. The target runs no tools, so each tool call is answered by a
tool message saying so (the API needs one before the next user turn).
"""

import json
from typing import Any

import openai
from django.core.exceptions import ValidationError

from grading_app import llm
from grading_app.conversations import Turn
from grading_app.models import Target
from grading_app.targets import Produced

TOOL_NOT_RUN = "(not run: this evaluation records tool calls without running the tools)"


def with_system_prompt(target: Target, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    system_prompt = target.config.get("system_prompt")
    return [{"role": "system", "content": system_prompt}, *messages] if system_prompt else messages


def messages_for(target: Target, case_input: dict[str, Any]) -> list[dict[str, Any]]:
    """The case's chat messages behind the target's system prompt (vars become one user turn)."""
    messages = list(case_input.get("messages") or [])
    if not messages and case_input.get("vars"):
        messages = [{"role": "user", "content": json.dumps(case_input["vars"], ensure_ascii=False)}]
    return with_system_prompt(target, messages)


def _ask(target: Target, messages: list[dict[str, Any]]) -> tuple[Produced, llm.ChatResult | None]:
    endpoint = target.endpoint
    try:
        result = llm.chat(
            endpoint,
            target.config["model"],
            messages,
            params=target.config.get("params"),
            tools=target.config.get("tools"),
        )
    except (openai.APIError, ValueError, ValidationError) as exc:
        # ValueError: a body that is not JSON; ValidationError: the host allowlist refused it.
        return Produced(error=f"{type(exc).__name__}: {exc}"[:2000]), None
    trace: list[dict[str, Any]] = []
    for call in result.tool_calls:
        try:
            arguments = json.loads(call["arguments"] or "{}")
        except ValueError:
            arguments = call["arguments"]  # what the model sent is evidence, even malformed
        trace.append({"type": "tool_call", "name": call["name"], "arguments": arguments})
    if result.content:
        trace.append({"type": "message", "role": "assistant", "content": result.content})
    metrics = {
        "latency_ms": result.latency_ms,
        "ttft_ms": result.ttft_ms,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": endpoint.cost_usd(result.input_tokens, result.output_tokens),
        "retries": result.retries,
    }
    return Produced(output=result.content, trace=trace, metrics=metrics), result


def produce(target: Target, case_input: dict[str, Any]) -> Produced:
    return _ask(target, messages_for(target, case_input))[0]


def turn(target: Target, conversation: list[dict[str, Any]], number: int) -> Turn:
    """The model's answer to the conversation so far (its last message the user's new turn)."""
    produced, result = _ask(target, with_system_prompt(target, conversation))
    if result is None:
        return Turn(produced)
    calls = [
        {
            "id": call["id"] or f"call_{number}_{index}",
            "type": "function",
            "function": {"name": call["name"], "arguments": call["arguments"] or "{}"},
        }
        for index, call in enumerate(result.tool_calls)
    ]
    assistant: dict[str, Any] = {"role": "assistant", "content": result.content or None}
    if calls:
        assistant["tool_calls"] = calls
    else:
        assistant["content"] = result.content  # an empty answer is still an answer
    tools = [{"role": "tool", "tool_call_id": call["id"], "content": TOOL_NOT_RUN} for call in calls]
    return Turn(produced, [assistant, *tools])
