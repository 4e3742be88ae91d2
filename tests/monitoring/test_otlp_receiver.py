"""The OTLP receiver's edges: bad bodies, content types, spans it cannot route, late and lost roots,
other conventions (OpenLLMetry, OpenInference), and retention."""

import datetime as dt
import json

import pytest
from django.utils import timezone

from monitoring_app.ingest import assemble_quiet_traces, purge_expired_traces
from monitoring_app.models import PendingSpan, Trace
from tests.factories import make_dataset, make_gate, make_source, make_token

pytestmark = pytest.mark.django_db
URL = "/otlp/v1/traces"
TRACE = "5b8efff798038103d269b633813fc60c"


def attr(key, value):
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def span(span_id, *, parent="", start=1_700_000_000_000_000_000, duration_ms=100, trace=TRACE, **attributes):
    return {
        "traceId": trace,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": attributes.pop("name", "span"),
        "kind": 1,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + duration_ms * 1_000_000),
        "attributes": [attr(k.replace("__", "."), v) for k, v in attributes.items()],
    }


def export(*spans, service="support-bot", version="v3"):
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [attr("service.name", service), attr("service.version", version)]},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}],
            }
        ]
    }


@pytest.fixture
def secret():
    gate = make_gate(make_dataset())
    make_source("support-bot", gates=(gate,))
    return make_token([gate], scopes=["traces:write"])


def send(api_client, secret, body, content_type="application/json", **headers):
    data = json.dumps(body) if not isinstance(body, bytes) else body
    return api_client.generic(
        "POST", URL, data, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {secret}", **headers
    )


def test_openllmetry_indexed_attributes_become_messages(api_client, secret):
    chat = span(
        "1111111111111111",
        name="openai.chat",
        llm__request__type="chat",
        gen_ai__request__model="gpt-4o",
        gen_ai__usage__prompt_tokens=11,
        gen_ai__usage__completion_tokens=4,
        gen_ai__prompt__0__role="user",
        gen_ai__prompt__0__content="hello",
        gen_ai__completion__0__role="assistant",
        gen_ai__completion__0__content="",
        gen_ai__completion__0__tool_calls__0__name="search",
        gen_ai__completion__0__tool_calls__0__arguments='{"q": "hello"}',
    )
    response = send(api_client, secret, export(chat))
    assert response.status_code == 200 and response.json() == {}
    stored = Trace.objects.get()
    assert stored.input == {"messages": [{"role": "user", "content": "hello"}]}
    # The last turn only called a tool: no final answer, and the call is in the trace.
    assert stored.output is None
    assert stored.trace == [{"type": "tool_call", "name": "search", "arguments": {"q": "hello"}}]
    assert (stored.input_tokens, stored.output_tokens, stored.release) == (11, 4, "v3")


def test_openinference_llm_and_retriever_spans_are_read(api_client, secret):
    root = span("1111111111111111", name="agent", duration_ms=900)
    retriever = span(
        "2222222222222222",
        parent="1111111111111111",
        openinference__span__kind="RETRIEVER",
        retrieval__documents__0__document__id="doc-1",
        retrieval__documents__0__document__content="Refunds within 30 days.",
    )
    llm = span(
        "3333333333333333",
        parent="1111111111111111",
        start=1_700_000_000_100_000_000,
        openinference__span__kind="LLM",
        llm__model_name="llama-3",
        llm__token_count__prompt=50,
        llm__token_count__completion=7,
        llm__input_messages__0__message__role="user",
        llm__input_messages__0__message__content="Refund after 40 days?",
        llm__output_messages__0__message__role="assistant",
        llm__output_messages__0__message__content="No [doc-1].",
    )
    assert send(api_client, secret, export(root, retriever, llm)).status_code == 200
    stored = Trace.objects.get()
    assert stored.trace == [
        {"type": "retrieval", "documents": [{"id": "doc-1", "text": "Refunds within 30 days."}]},
        {"type": "message", "role": "assistant", "content": "No [doc-1]."},
    ]
    assert stored.output == "No [doc-1]."
    assert (stored.input_tokens, stored.latency_ms, stored.metadata["model"]) == (50, 900, "llama-3")


def test_a_body_that_is_not_otlp_is_a_400_in_the_requests_encoding(api_client, secret):
    from monitoring_app.otlp import _status_message_class

    bad = send(api_client, secret, b"\x0a\xff\xff\xff", content_type="application/x-protobuf")
    assert bad.status_code == 400 and bad["Content-Type"] == "application/x-protobuf"
    status = _status_message_class()()
    status.ParseFromString(bad.content)
    assert "not an OTLP ExportTraceServiceRequest" in status.message

    wrong_id = send(api_client, secret, export(span("xyz")))
    assert wrong_id.status_code == 400
    assert "resourceSpans[0].scopeSpans[0].spans[0].spanId" in wrong_id.json()["message"]
    assert send(api_client, secret, b"<xml/>", content_type="text/xml").status_code == 415
    assert Trace.objects.count() == PendingSpan.objects.count() == 0


def test_spans_of_a_source_the_token_cannot_reach_are_rejected_as_partial_success(api_client, secret):
    other = make_gate(make_dataset())
    make_source("billing", gates=(other,))
    response = send(api_client, secret, export(span("1111111111111111")), HTTP_EVALGATE_SOURCE="billing")
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "Evalgate-Source" in partial["errorMessage"]
    assert Trace.objects.count() == 0


def test_a_span_arriving_after_its_trace_was_stored_is_reported_not_silently_kept(api_client, secret):
    assert send(api_client, secret, export(span("1111111111111111"))).status_code == 200
    late = send(api_client, secret, export(span("2222222222222222", parent="1111111111111111")))
    assert "after their trace was stored" in late.json()["partialSuccess"]["errorMessage"]
    assert Trace.objects.count() == 1 and PendingSpan.objects.count() == 0


def test_a_trace_whose_root_never_came_is_stored_partial_after_the_wait(api_client, secret, settings):
    child = span("2222222222222222", parent="1111111111111111", gen_ai__operation__name="chat")
    assert send(api_client, secret, export(child)).status_code == 200
    assert Trace.objects.count() == 0 and PendingSpan.objects.count() == 1
    assert assemble_quiet_traces() == 0  # not quiet yet
    later = timezone.now() + dt.timedelta(seconds=settings.EVALGATE_OTLP_ASSEMBLY_WAIT_S + 1)
    assert assemble_quiet_traces(now=later) == 1
    stored = Trace.objects.get()
    assert stored.metadata["otel"]["partial"] is True and PendingSpan.objects.count() == 0


def test_traces_past_retention_are_purged_per_source(api_client, secret, settings):
    from monitoring_app.models import Source

    short = make_source("short", retention_days=2)
    keep = Source.objects.get(slug="support-bot")
    now = timezone.now()
    for source in (keep, short):
        for age in (1, 5, 40):
            Trace.objects.create(
                source=source, client_id=f"{source.slug}-{age}", time=now - dt.timedelta(days=age)
            )
    settings.EVALGATE_TRACE_RETENTION_DAYS = 30
    assert purge_expired_traces(now=now) == 3
    assert sorted(Trace.objects.values_list("client_id", flat=True)) == [
        "short-1",
        "support-bot-1",
        "support-bot-5",
    ]
