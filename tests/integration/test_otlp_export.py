"""The OTLP/HTTP receiver, fed by the official OpenTelemetry SDK and its exporters (protobuf and
JSON) over real HTTP: GenAI spans arrive as records with messages, tool calls and token usage."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import Status, StatusCode

from monitoring_app.models import PendingSpan, Trace
from tests.factories import make_dataset, make_gate, make_source, make_token

pytestmark = pytest.mark.django_db(transaction=True)


def agent_turn(tracer: Any) -> str:
    """One support-bot request as an instrumented app records it (current GenAI conventions):
    an agent span, a chat turn that calls a tool, the tool's execution, the final chat turn."""
    question = "Refund order 7? My card is 4111 1111 1111 1111."
    with tracer.start_as_current_span("invoke_agent support-bot") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("gen_ai.agent.name", "support-bot")
        with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.provider.name", "openai")
            chat.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            chat.set_attribute("gen_ai.usage.input_tokens", 120)
            chat.set_attribute("gen_ai.usage.output_tokens", 18)
            chat.set_attribute(
                "gen_ai.system_instructions",
                json.dumps([{"type": "text", "content": "You are a support agent."}]),
            )
            chat.set_attribute(
                "gen_ai.input.messages",
                json.dumps([{"role": "user", "parts": [{"type": "text", "content": question}]}]),
            )
            chat.set_attribute(
                "gen_ai.output.messages",
                json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [
                                {
                                    "type": "tool_call",
                                    "id": "call_1",
                                    "name": "lookup_order",
                                    "arguments": {"id": 7},
                                }
                            ],
                            "finish_reason": "tool_call",
                        }
                    ]
                ),
            )
        with tracer.start_as_current_span("execute_tool lookup_order") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "lookup_order")
            tool.set_attribute("gen_ai.tool.call.id", "call_1")
            tool.set_attribute("gen_ai.tool.call.result", json.dumps({"order": 7, "age_days": 41}))
        with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            chat.set_attribute("gen_ai.usage.input_tokens", 160)
            chat.set_attribute("gen_ai.usage.output_tokens", 25)
            chat.set_attribute(
                "gen_ai.output.messages",
                json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [
                                {"type": "text", "content": "Order 7 is past the 30-day refund window."}
                            ],
                            "finish_reason": "stop",
                        }
                    ]
                ),
            )
        return format(root.get_span_context().trace_id, "032x")


def event_style_turn(tracer: Any) -> str:
    """An older instrumentation: messages as span events (gen_ai.user.message, gen_ai.choice)."""
    with tracer.start_as_current_span("chat gpt-4o") as chat:
        chat.set_attribute("gen_ai.operation.name", "chat")
        chat.set_attribute("gen_ai.system", "openai")
        chat.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06")
        chat.set_attribute("gen_ai.usage.input_tokens", 30)
        chat.set_attribute("gen_ai.usage.output_tokens", 9)
        chat.add_event("gen_ai.user.message", {"content": "Where is my parcel?"})
        chat.add_event(
            "gen_ai.choice",
            {
                "index": 0,
                "finish_reason": "stop",
                "message": json.dumps({"role": "assistant", "content": "On its way."}),
            },
        )
        chat.set_status(Status(StatusCode.OK))
        return format(chat.get_span_context().trace_id, "032x")


def provider_with(exporter: Any, processor: Callable[[Any], Any]) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "support-bot", "service.version": "v7"})
    )
    provider.add_span_processor(processor(exporter))
    return provider


@pytest.fixture
def secret():
    gate = make_gate(make_dataset())
    make_source(
        "support-bot",
        gates=(gate,),
        redaction=[{"field": "*", "preset": "card_number"}],
    )
    return make_token([gate], scopes=["traces:write"])


def assert_agent_record(trace_id: str) -> None:
    stored = Trace.objects.get(client_id=trace_id)
    assert stored.origin == "otlp" and stored.release == "v7"
    assert stored.input == {
        "messages": [
            {"role": "system", "content": "You are a support agent."},
            {"role": "user", "content": "Refund order 7? My card is [card]."},
        ]
    }
    assert stored.output == "Order 7 is past the 30-day refund window."
    assert stored.trace == [
        {
            "type": "tool_call",
            "name": "lookup_order",
            "arguments": {"id": 7},
            "result": {"order": 7, "age_days": 41},
        },
        {"type": "message", "role": "assistant", "content": "Order 7 is past the 30-day refund window."},
    ]
    assert (stored.input_tokens, stored.output_tokens, stored.tool_calls) == (280, 43, 1)
    assert stored.latency_ms is not None and stored.latency_ms >= 0
    assert stored.metadata["model"] == "gpt-4o-mini"
    assert stored.metadata["agent"] == "support-bot"
    assert stored.metadata["provider"] == "openai"
    assert stored.metadata["otel"]["spans"] == 4


def test_protobuf_spans_exported_one_by_one_arrive_as_one_record(live_server, secret):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}/otlp/v1/traces", headers={"Authorization": f"Bearer {secret}"}
    )
    results = []
    original = exporter.export
    exporter.export = lambda spans: results.append(original(spans)) or results[-1]
    # SimpleSpanProcessor exports every span as it ends: children first, the root last, so
    # the receiver must hold the early spans until the root arrives.
    provider = provider_with(exporter, SimpleSpanProcessor)
    trace_id = agent_turn(provider.get_tracer("support-bot"))
    provider.shutdown()

    assert results == [SpanExportResult.SUCCESS] * 4
    assert_agent_record(trace_id)
    assert PendingSpan.objects.count() == 0


def test_json_export_in_one_batch_maps_both_message_conventions(live_server, secret):
    from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}/otlp/v1/traces", headers={"Authorization": f"Bearer {secret}"}
    )
    provider = provider_with(exporter, BatchSpanProcessor)
    tracer = provider.get_tracer("support-bot")
    agent_id = agent_turn(tracer)
    event_id = event_style_turn(tracer)
    assert provider.force_flush()
    provider.shutdown()

    assert_agent_record(agent_id)
    older = Trace.objects.get(client_id=event_id)
    assert older.input == {"messages": [{"role": "user", "content": "Where is my parcel?"}]}
    assert older.output == "On its way."
    assert (older.input_tokens, older.output_tokens) == (30, 9)
    assert older.metadata["model"] == "gpt-4o-2024-08-06"
    assert older.metadata["provider"] == "openai"


def test_an_export_without_a_valid_token_stores_nothing(live_server, secret):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}/otlp/v1/traces", headers={"Authorization": "Bearer eg_not_a_token"}
    )
    provider = provider_with(exporter, SimpleSpanProcessor)
    event_style_turn(provider.get_tracer("support-bot"))
    provider.shutdown()
    assert Trace.objects.count() == 0 and PendingSpan.objects.count() == 0
