"""Map the spans of one OpenTelemetry trace, by the GenAI semantic conventions, into one
production record of the API's shape (``{"id", "time", "release", "input", "output",
"trace", "metrics", "metadata"}``); pure, no database.

Read, in order of preference: the current conventions (``gen_ai.input.messages`` /
``gen_ai.output.messages`` / ``gen_ai.system_instructions`` with typed parts, and
``execute_tool`` spans), the older per-message span events (``gen_ai.user.message``,
``gen_ai.choice``, ...), OpenLLMetry's indexed ``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*``
attributes, and OpenInference's ``llm.input_messages.N.message.*`` family.
"""

import contextlib
import datetime as dt
import json
from typing import Any

LLM_OPERATIONS = {"chat", "text_completion", "generate_content", "completion"}
TOOL_OPERATION = "execute_tool"
MESSAGE_EVENTS = (
    "gen_ai.system.message",
    "gen_ai.user.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
)
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion")
TTFT_SECONDS = ("gen_ai.server.time_to_first_token", "gen_ai.response.time_to_first_chunk")
INDEXED_FAMILIES = (("gen_ai.prompt", "gen_ai.completion"), ("llm.input_messages", "llm.output_messages"))
STATUS_ERROR = 2  # OTLP Status.code


def _json(value: Any) -> Any:
    """Attribute values that carry JSON as a string (messages, arguments) decoded; else as is."""
    if isinstance(value, str) and value[:1] in "[{":
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value


def _indexed(attributes: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``prefix.0.role = user, prefix.0.content = hi`` -> ``[{"role": "user", "content": "hi"}]``,
    nested indexes too (``prefix.0.tool_calls.1.name`` becomes a ``tool_calls`` list)."""
    items: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        head, _, tail = key.removeprefix(prefix + ".").partition(".")
        if key.startswith(prefix + ".") and head.isdigit() and tail:
            items.setdefault(int(head), {})[tail] = value
    out = []
    for index in sorted(items):
        flat = items[index]
        nested = {k.split(".")[0] for k in flat if k.count(".") >= 2 and k.split(".")[1].isdigit()}
        item = {k: v for k, v in flat.items() if k.split(".")[0] not in nested}
        for name in nested:
            item[name] = _indexed(flat, name)
        out.append(item)
    return out


# --- messages --------------------------------------------------------------------------


def _tool_call(name: Any, arguments: Any, call_id: Any = "") -> dict[str, Any]:
    return {"id": str(call_id or ""), "name": str(name or ""), "arguments": _json(arguments) or {}}


def _from_parts(message: dict[str, Any]) -> dict[str, Any]:
    """A message of the current conventions (``parts``) as a chat message with tool_calls."""
    text, calls, result = [], [], None
    for part in message.get("parts") or []:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            text.append(str(part.get("content", "")))
        elif kind == "tool_call":
            calls.append(_tool_call(part.get("name"), part.get("arguments"), part.get("id")))
        elif kind == "tool_call_response":
            result = {"id": str(part.get("id", "")), "content": part.get("response", part.get("result"))}
    out: dict[str, Any] = {"role": str(message.get("role", "")), "content": "\n".join(text)}
    if calls:
        out["tool_calls"] = calls
    if result is not None:
        out["tool_call_id"], out["content"] = result["id"], result["content"]
    return out


def _from_chat(message: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-style or OpenLLMetry/OpenInference message as a chat message with tool_calls."""
    if "parts" in message:
        return _from_parts(message)
    inner = message.get("message") if isinstance(message.get("message"), dict) else message
    calls = []
    for call in inner.get("tool_calls") or []:
        if isinstance(call, dict):
            function = call.get("function") or call.get("tool_call", {}).get("function") or call
            calls.append(_tool_call(function.get("name"), function.get("arguments"), call.get("id")))
    out: dict[str, Any] = {"role": str(inner.get("role", "")), "content": _content_text(inner.get("content"))}
    if calls:
        out["tool_calls"] = calls
    if inner.get("tool_call_id") or (inner.get("id") and inner.get("role") == "tool"):
        out["tool_call_id"] = str(inner.get("tool_call_id") or inner.get("id"))
    return out


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, list):  # OpenAI content parts
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def _messages_from_events(span: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    inputs, outputs = [], []
    for event in span["events"]:
        name, attrs = event["name"], event["attributes"]
        body = _json(attrs.get("gen_ai.event.content") or attrs.get("event.body")) or {}
        body = body if isinstance(body, dict) else {"content": body}
        merged = {**{k: _json(v) for k, v in attrs.items()}, **body}
        if name in MESSAGE_EVENTS:
            role = name.split(".")[1]
            inputs.append(_from_chat({**merged, "role": merged.get("role", role)}))
        elif name == "gen_ai.choice":
            message = merged.get("message") if isinstance(merged.get("message"), dict) else merged
            outputs.append(_from_chat({**message, "role": message.get("role", "assistant")}))
    return inputs, outputs


def span_messages(span: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(input messages, output messages) of an LLM span, whichever convention it used."""
    attrs = span["attributes"]
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    system = _json(attrs.get("gen_ai.system_instructions"))
    if isinstance(system, list):
        text = "\n".join(str(p.get("content", "")) for p in system if isinstance(p, dict))
        inputs.append({"role": "system", "content": text})
    elif isinstance(system, str) and system:
        inputs.append({"role": "system", "content": system})
    raw_in, raw_out = _json(attrs.get("gen_ai.input.messages")), _json(attrs.get("gen_ai.output.messages"))
    if isinstance(raw_in, list) or isinstance(raw_out, list):
        inputs += [_from_chat(m) for m in raw_in or [] if isinstance(m, dict)]
        outputs += [_from_chat(m) for m in raw_out or [] if isinstance(m, dict)]
        return inputs, outputs
    event_in, event_out = _messages_from_events(span)
    if event_in or event_out:
        return inputs + event_in, event_out
    for prefix_in, prefix_out in INDEXED_FAMILIES:
        found_in, found_out = _indexed(attrs, prefix_in), _indexed(attrs, prefix_out)
        if found_in or found_out:
            return (
                inputs + [_from_chat(_unprefixed(m)) for m in found_in],
                [_from_chat({"role": "assistant", **_unprefixed(m)}) for m in found_out],
            )
    return inputs, outputs


def _unprefixed(item: dict[str, Any]) -> dict[str, Any]:
    """OpenInference nests each message under ``message.`` (``message.role``)."""
    out = {}
    for key, value in item.items():
        out[key.removeprefix("message.")] = value
    return out


# --- spans to a record ------------------------------------------------------------------


def _operation(span: dict[str, Any]) -> str:
    attrs = span["attributes"]
    operation = attrs.get("gen_ai.operation.name")
    if operation:
        return str(operation)
    kind = str(attrs.get("openinference.span.kind", "")).upper()
    if kind == "LLM" or attrs.get("llm.request.type") in ("chat", "completion"):
        return "chat"
    if kind == "TOOL":
        return TOOL_OPERATION
    if kind == "RETRIEVER":
        return "retrieval"
    if "gen_ai.usage.input_tokens" in attrs or "gen_ai.request.model" in attrs:
        return "chat"
    return ""


def _first(attrs: dict[str, Any], *keys: str) -> Any:
    """The first of ``keys`` the span has (conventions renamed attributes over the years)."""
    return next((attrs[key] for key in keys if attrs.get(key) not in (None, "")), None)


def _number(attrs: dict[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = attrs.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    return None


def _documents(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    docs = _json(attrs.get("gen_ai.retrieval.documents"))
    if isinstance(docs, list):
        return [
            {"id": str(d.get("id", "")), "text": d.get("content", d.get("text", ""))}
            for d in docs
            if isinstance(d, dict)
        ]
    return [
        {"id": str(d.get("document.id", "")), "text": d.get("document.content", "")}
        for d in _indexed(attrs, "retrieval.documents")
    ]


def _iso(nanos: int) -> str:
    return dt.datetime.fromtimestamp(nanos / 1e9, tz=dt.UTC).isoformat()


def record_from_spans(trace_id: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
    """One production record for the spans of one trace (in any order)."""
    spans = sorted(spans, key=lambda s: (s["start_ns"], s["end_ns"]))
    start = min(s["start_ns"] for s in spans)
    end = max(s["end_ns"] for s in spans)
    root = next((s for s in spans if not s["parent_id"]), spans[0])
    resource = root["resource"]
    steps: list[dict[str, Any]] = []
    by_call_id: dict[str, dict[str, Any]] = {}
    first_input: list[dict[str, Any]] | None = None
    output: Any = None
    input_tokens = output_tokens = 0
    counted_tokens = False
    cost = None
    retries = 0
    models, errors, finish_reasons = [], [], []
    for span in spans:
        attrs, operation = span["attributes"], _operation(span)
        if span["status"]["code"] == STATUS_ERROR:
            errors.append(f"{span['name']}: {span['status']['message']}".strip(": "))
        resend = _number(attrs, "http.request.resend_count")
        retries += int(resend or 0)
        if operation in LLM_OPERATIONS:
            model = _first(attrs, "gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
            if model and model not in models:
                models.append(str(model))
            tokens_in = _number(attrs, *INPUT_TOKENS)
            tokens_out = _number(attrs, *OUTPUT_TOKENS)
            if tokens_in is not None or tokens_out is not None:
                counted_tokens = True
                input_tokens += int(tokens_in or 0)
                output_tokens += int(tokens_out or 0)
            if (span_cost := _number(attrs, "gen_ai.usage.cost")) is not None:
                cost = (cost or 0) + span_cost
            reasons = attrs.get("gen_ai.response.finish_reasons")
            if isinstance(reasons, list):
                finish_reasons += [str(r) for r in reasons]
            inputs, outputs = span_messages(span)
            if first_input is None and inputs:
                first_input = [m for m in inputs if m.get("role") != "tool" or m.get("content")]
            for message in outputs:
                text = message.get("content") or ""
                if text:
                    steps.append({"type": "message", "role": "assistant", "content": text})
                for call in message.get("tool_calls") or []:
                    step = {"type": "tool_call", "name": call["name"], "arguments": call["arguments"]}
                    steps.append(step)
                    if call["id"]:
                        by_call_id[call["id"]] = step
                if message.get("content") or message.get("tool_calls"):
                    # The answer is the last LLM turn: text, or nothing when it only called a tool.
                    output = text or None
        elif operation == TOOL_OPERATION:
            call_id = str(attrs.get("gen_ai.tool.call.id", ""))
            result = _json(attrs.get("gen_ai.tool.call.result", attrs.get("output.value")))
            step = by_call_id.get(call_id) if call_id else None
            if step is None:
                name = attrs.get("gen_ai.tool.name") or attrs.get("tool.name") or span["name"]
                arguments = _first(attrs, "gen_ai.tool.call.arguments", "tool.parameters", "input.value")
                step = {"type": "tool_call", "name": str(name), "arguments": _json(arguments) or {}}
                steps.append(step)
            if result is not None:
                step["result"] = result
            if span["status"]["code"] == STATUS_ERROR:
                step["error"] = span["status"]["message"] or "error"
        elif operation == "retrieval" and (documents := _documents(attrs)):
            steps.append({"type": "retrieval", "documents": documents})
    ttft_s = next((v for s in spans if (v := _number(s["attributes"], *TTFT_SECONDS)) is not None), None)
    metrics: dict[str, Any] = {"latency_ms": round((end - start) / 1e6, 3), "retries": retries}
    if counted_tokens:
        metrics |= {"input_tokens": input_tokens, "output_tokens": output_tokens}
    if cost is not None:
        metrics["cost_usd"] = cost
    if ttft_s is not None:
        metrics["ttft_ms"] = round(ttft_s * 1000, 3)
    metadata: dict[str, Any] = {"otel": {"trace_id": trace_id, "spans": len(spans), "root": root["name"]}}
    if service := resource.get("service.name"):
        metadata["service"] = service
    if models:
        metadata["model"] = models[0] if len(models) == 1 else models
    for key, names in (
        ("provider", ("gen_ai.provider.name", "gen_ai.system")),
        ("agent", ("gen_ai.agent.name",)),
    ):
        if found := next((v for s in spans if (v := _first(s["attributes"], *names))), None):
            metadata[key] = found
    if finish_reasons:
        metadata["finish_reasons"] = finish_reasons
    if errors:
        metadata["errors"] = errors
    if (conversation := root["attributes"].get("gen_ai.conversation.id")) is not None:
        metadata["conversation"] = conversation
    release = resource.get("service.version") or root["attributes"].get("evalgate.release") or ""
    return {
        "id": trace_id,
        "time": _iso(start),
        "release": str(release),
        "input": {"messages": first_input or []},
        "output": output,
        "trace": steps,
        "metrics": metrics,
        "metadata": metadata,
    }
