"""The openai_chat target: ask a chat model, record its answer, tool calls and timings."""

import json
from typing import Any

import openai
from django.core.exceptions import ValidationError

from grading_app import llm
from grading_app.models import Target
from grading_app.targets import Produced


def messages_for(target: Target, case_input: dict[str, Any]) -> list[dict[str, Any]]:
    """The case's chat messages behind the target's system prompt (vars become one user turn)."""
    messages = list(case_input.get("messages") or [])
    if not messages and case_input.get("vars"):
        messages = [{"role": "user", "content": json.dumps(case_input["vars"], ensure_ascii=False)}]
    system_prompt = target.config.get("system_prompt")
    if system_prompt:
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return messages


def produce(target: Target, case_input: dict[str, Any]) -> Produced:
    endpoint = target.endpoint
    try:
        result = llm.chat(
            endpoint,
            target.config["model"],
            messages_for(target, case_input),
            params=target.config.get("params"),
            tools=target.config.get("tools"),
        )
    except (openai.APIError, ValueError, ValidationError) as exc:
        # ValueError: a body that is not JSON; ValidationError: the host allowlist refused it.
        return Produced(error=f"{type(exc).__name__}: {exc}"[:2000])
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
    return Produced(output=result.content, trace=trace, metrics=metrics)
