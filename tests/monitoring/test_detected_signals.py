"""Production traces whose source does not report `refused`/`escalated` get them from the
detectors at ingestion (API and OTLP), marked as detected; a reported value is never replaced,
and graders of live traffic see only what the source reported."""

import json

import pytest

from monitoring_app.ingest import store_records
from monitoring_app.models import MonitorSample, Trace, TraceGrade
from monitoring_app.records import parse_records
from tests.factories import (
    make_dataset,
    make_gate,
    make_grader,
    make_monitor,
    make_source,
    make_token,
    make_user,
)
from tests.monitoring.test_otlp_receiver import export, send, span

pytestmark = pytest.mark.django_db
REFUSAL = "I'm sorry, but I can't help with that request."
ANSWER = "Refunds are possible within 30 days of delivery."
HANDOFF = [{"type": "tool_call", "name": "transfer_to_human", "arguments": {"reason": "angry"}}]
SIGNALS = ("refused", "escalated", "refused_detected", "escalated_detected")


def record(client_id, output, **fields):
    return {"id": client_id, "time": "2026-12-01T10:00:00Z", "release": "v2", "output": output, **fields}


@pytest.fixture
def gate():
    return make_gate(make_dataset())


def post(api_client, gate, traces):
    secret = make_token([gate], scopes=["traces:write"])
    response = api_client.post(
        "/api/v1/traces/", {"traces": traces}, format="json", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert response.status_code == 200, response.json()


def stored(client_id):
    return Trace.objects.values_list(*SIGNALS).get(client_id=client_id)


def test_signals_a_source_does_not_report_are_detected_and_marked(api_client, gate):
    make_source(gates=(gate,))
    post(
        api_client,
        gate,
        [
            record("refusal", REFUSAL),
            record("answer", ANSWER, metrics={"latency_ms": 640}),
            record("handoff", "One moment, please.", trace=HANDOFF),
            record("said-handoff", "I'm transferring you to a human agent now."),
            record("json", {"answer": REFUSAL}),  # a JSON output is read as its serialisation
        ],
    )
    assert stored("refusal") == (True, False, True, True)
    assert stored("answer") == (False, False, True, True)
    assert stored("handoff") == (False, True, True, True)
    assert stored("said-handoff") == (False, True, True, True)
    assert stored("json") == (True, False, True, True)


def test_a_reported_value_is_never_replaced_by_a_detected_one(api_client, gate):
    make_source(gates=(gate,))
    post(
        api_client,
        gate,
        [
            record("says-no", REFUSAL, metrics={"refused": False}, trace=HANDOFF),
            record("says-yes", ANSWER, metrics={"refused": True, "escalated": True}),
            record("half", REFUSAL, metrics={"escalated": False}),
        ],
    )
    assert stored("says-no") == (False, True, False, True)  # escalated was not reported
    assert stored("says-yes") == (True, True, False, False)
    assert stored("half") == (True, False, True, False)


def test_with_no_answer_only_a_hand_off_tool_decides(api_client, gate):
    make_source(gates=(gate,))
    post(api_client, gate, [record("silent", None), record("silent-handoff", None, trace=HANDOFF)])
    # Nothing to read: undecided, not "did not refuse".
    assert stored("silent") == (None, None, False, False)
    assert stored("silent-handoff") == (None, True, False, True)


def test_detection_reads_the_redacted_answer(api_client, gate):
    # Like every column, the signals come from what is stored: a rule that removes the wording
    # removes what the detector could read. (What is left must not decline anything: "I'm sorry,
    # but I [x] with that request" still reads as a refusal.)
    redaction = [{"field": "output", "pattern": "sorry, but I can't help with that", "replacement": "[x]"}]
    make_source(gates=(gate,), redaction=redaction)
    post(api_client, gate, [record("redacted", REFUSAL)])
    assert Trace.objects.get(client_id="redacted").output == "I'm [x] request."
    assert stored("redacted") == (False, False, True, True)


def chat(span_id, text, *, parent="", trace):
    message = [{"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}]
    return span(
        span_id,
        parent=parent,
        trace=trace,
        name="chat gpt-4o-mini",
        gen_ai__operation__name="chat",
        gen_ai__output__messages=json.dumps(message),
    )


def test_otlp_traces_get_the_signals_their_spans_do_not_carry(api_client):
    gate = make_gate(make_dataset())
    make_source("support-bot", gates=(gate,))
    secret = make_token([gate], scopes=["traces:write"])
    refusing, handing_off = "a" * 32, "b" * 32
    tool = span(
        "2222222222222222",
        parent="1111111111111111",
        trace=handing_off,
        name="execute_tool transfer_to_human",
        gen_ai__operation__name="execute_tool",
        gen_ai__tool__name="transfer_to_human",
    )
    body = export(
        chat("3333333333333333", REFUSAL, trace=refusing),
        span("1111111111111111", trace=handing_off, name="invoke_agent support-bot"),
        tool,
        chat("4444444444444444", "One moment, please.", parent="1111111111111111", trace=handing_off),
    )
    response = send(api_client, secret, body)
    assert response.status_code == 200, response.content
    assert stored(refusing) == (True, False, True, True)
    assert stored(handing_off) == (False, True, True, True)


def test_graders_of_live_traffic_see_only_what_the_source_reported(django_capture_on_commit_callbacks, gate):
    # A refusal grader with its own phrases reads them unless the system reported `refused`; a
    # detected value must not pass for the system's word (the grade would then follow the detector).
    source = make_source(gates=(gate,))
    grader = make_grader("refuses", kind="refusal", config={"phrases": ["not allowed"]})
    monitor = make_monitor(source, graders=[grader], sample_rate=1.0, expected={"must_refuse": True})
    records = parse_records(
        [record("detected", REFUSAL), record("reported", ANSWER, metrics={"refused": True})]
    )
    with django_capture_on_commit_callbacks(execute=True):
        store_records(records, [source, source])

    assert stored("detected")[0::2] == (True, True)  # refused, refused_detected
    grades = {
        g.sample.trace.client_id: g
        for g in TraceGrade.objects.filter(sample__monitor=monitor).select_related("sample__trace")
    }
    assert MonitorSample.objects.filter(monitor=monitor).count() == 2
    assert grades["detected"].passed is False  # the phrases found no refusal
    assert "metrics.refused" not in grades["detected"].rationale
    assert grades["reported"].passed is True
    assert "metrics.refused is true" in grades["reported"].rationale


def test_the_trace_page_says_which_signals_were_detected(api_client, gate, client):
    make_source(gates=(gate,))
    post(api_client, gate, [record("t-1", REFUSAL, metrics={"escalated": False})])
    client.force_login(make_user(is_superuser=True, is_staff=True))
    trace = Trace.objects.get(client_id="t-1")
    page = client.get(f"/admin/monitoring_app/trace/{trace.pk}/change/").content.decode()
    assert "refused True (detected)" in page and "escalated False ·" in page
    listing = client.get("/admin/monitoring_app/trace/", {"refused_detected__exact": "1"}).content.decode()
    assert "t-1" in listing
