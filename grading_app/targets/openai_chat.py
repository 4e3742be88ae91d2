"""The openai_chat target: ask a chat model, record its answer, tool calls and timings.

A multi-turn case calls it once per user turn (``turn``): the assistant's replies and its tool
calls accumulate in the messages. The target runs no tools of its own. A case may declare what
its tools return (``input.tool_results``: tool name -> result): a call of such a tool is
answered with that result and the model asked again, as an agent's runtime would, for up to
``max_tool_rounds`` calls of the model (config; default 5) before the turn is an error; a
declared result holding ``documents`` (a list of ``{"id", "text"}``) is also the trace's
retrieval step. A call of a tool the case declares nothing for is answered by a tool message
saying it was not run (the API needs one before the next message), and the turn ends there.
"""

import json
from typing import Any

import openai
from django.core.exceptions import ValidationError

from grading_app import llm
from grading_app.conversations import Turn, total_metrics
from grading_app.models import Target
from grading_app.targets import Produced

TOOL_NOT_RUN = "(not run: this evaluation records tool calls without running the tools)"
MAX_TOOL_ROUNDS = 5


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
    return _answer(target, messages_for(target, case_input), 1, case_input.get("tool_results")).reply


def turn(
    target: Target, conversation: list[dict[str, Any]], number: int, tool_results: dict | None = None
) -> Turn:
    """The model's answer to the conversation so far (its last message the user's new turn)."""
    return _answer(target, with_system_prompt(target, conversation), number, tool_results)


def _answer(target: Target, messages: list[dict[str, Any]], number: int, tool_results: dict | None) -> Turn:
    """Ask the model; while it calls tools the case declares results for, hand it those results
    and ask again. The Turn's reply holds every call's trace and the calls' metrics summed; its
    messages are what the exchange adds to the conversation (assistant and tool messages)."""
    rounds = target.config.get("max_tool_rounds") or MAX_TOOL_ROUNDS
    declared = tool_results if isinstance(tool_results, dict) else {}
    added: list[dict[str, Any]] = []
    trace: list[dict[str, Any]] = []
    per_call: list[dict[str, Any]] = []
    for round_ in range(1, rounds + 1):
        produced, result = _ask(target, messages + added)
        if result is None:
            return Turn(Produced(error=produced.error, trace=trace, metrics=_summed(per_call)), added)
        per_call.append(produced.metrics)
        calls = [
            {
                "id": call["id"] or f"call_{number}_{round_}_{index}",
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
        answers = []
        # _ask's trace lists the tool calls first, in the model's order, then its words.
        for call, step in zip(calls, produced.trace, strict=False):
            name = call["function"]["name"]
            trace.append(step)
            if name in declared:
                step["result"] = declared[name]
                content = declared[name]
                if isinstance(content, dict) and isinstance(content.get("documents"), list):
                    # A search tool's result: what the model was given to cite.
                    trace.append({"type": "retrieval", "tool": name, "documents": content["documents"]})
                if not isinstance(content, str):
                    content = json.dumps(content, ensure_ascii=False, sort_keys=True)
            else:
                content = TOOL_NOT_RUN
            answers.append({"role": "tool", "tool_call_id": call["id"], "content": content})
        trace.extend(produced.trace[len(calls) :])
        added += [assistant, *answers]
        if not calls or not any(call["function"]["name"] in declared for call in calls):
            return Turn(Produced(output=result.content, trace=trace, metrics=_summed(per_call)), added)
    problem = f"the model was still calling tools after {rounds} calls answered with the case's tool results"
    return Turn(Produced(error=problem, trace=trace, metrics=_summed(per_call)), added)


def _summed(per_call: list[dict[str, Any]]) -> dict[str, Any]:
    """One answer's metrics over the model calls it took (latency, tokens, cost and retries
    summed; the time to first token of the first call)."""
    if len(per_call) == 1:
        return per_call[0]
    summed = total_metrics(per_call)
    summed.pop("turns", None)
    return summed
