"""POST /api/v1/traces/: batches stored once per id, validated whole, redacted, within the token's reach."""

import datetime as dt

import pytest
from django.utils import timezone

from monitoring_app.models import Trace
from tests.factories import make_dataset, make_gate, make_source, make_token, make_user

pytestmark = pytest.mark.django_db
URL = "/api/v1/traces/"


def record(client_id: str, **fields):
    return {
        "id": client_id,
        "time": "2026-12-01T10:00:00Z",
        "release": "v2",
        "input": {"messages": [{"role": "user", "content": "Can I get a refund after 40 days?"}]},
        "output": "No, refunds are possible within 30 days.",
        "metrics": {"latency_ms": 812.5, "ttft_ms": 120, "input_tokens": 40, "output_tokens": 12},
        **fields,
    }


@pytest.fixture
def gate():
    return make_gate(make_dataset())


def post(api_client, secret, body):
    return api_client.post(URL, body, format="json", HTTP_AUTHORIZATION=f"Bearer {secret}")


def test_a_batch_with_a_repeated_id_stores_each_trace_once(api_client, gate):
    source = make_source(gates=(gate,))
    secret = make_token([gate], scopes=["traces:write"])
    first = post(api_client, secret, {"traces": [record("t-1"), record("t-2")]})
    assert first.status_code == 200, first.json()
    assert first.json() == {"received": 2, "stored": 2, "duplicates": []}

    again = post(api_client, secret, {"traces": [record("t-2"), record("t-3", feedback={"thumbs": "down"})]})
    assert again.json() == {"received": 2, "stored": 1, "duplicates": ["t-2"]}
    assert sorted(Trace.objects.filter(source=source).values_list("client_id", flat=True)) == [
        "t-1",
        "t-2",
        "t-3",
    ]
    stored = Trace.objects.get(client_id="t-3")
    assert (stored.latency_ms, stored.ttft_ms, stored.input_tokens, stored.thumbs) == (812.5, 120, 40, "down")
    assert stored.release == "v2" and stored.time == dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)


def test_an_openai_transcript_is_stored_as_steps_and_tool_calls_are_counted(api_client, gate):
    make_source(gates=(gate,))
    transcript = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": '{"id": 7}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "order 7: bought 41 days ago"},
        {"role": "assistant", "content": "That order is past the 30-day window."},
    ]
    response = post(
        api_client, make_token([gate], scopes=["traces:write"]), {"traces": [record("t-1", trace=transcript)]}
    )
    assert response.status_code == 200, response.json()
    stored = Trace.objects.get()
    assert stored.trace[0] == {
        "type": "tool_call",
        "name": "lookup_order",
        "arguments": {"id": 7},
        "result": "order 7: bought 41 days ago",
    }
    assert (stored.tool_calls, stored.trace_steps) == (1, 2)


def test_one_bad_record_refuses_the_batch_naming_every_problem(api_client, gate):
    make_source(gates=(gate,))
    secret = make_token([gate], scopes=["traces:write"])
    future = (timezone.now() + dt.timedelta(days=1)).isoformat()
    body = {
        "traces": [
            record("ok"),
            record("", time="yesterday"),
            record(
                "t-3", metrics={"latency_ms": -1, "tokens": 3}, feedback={"thumbs": "sideways", "score": 4}
            ),
            record("t-4", time=future, trace=[{"type": "teleport"}]),
            record("ok"),
        ]
    }
    response = post(api_client, secret, body)
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert set(details) == {
        "traces[1].id",
        "traces[1].time",
        "traces[2].metrics.latency_ms",
        "traces[2].metrics.tokens",
        "traces[2].feedback.thumbs",
        "traces[2].feedback.score",
        "traces[3].time",
        "traces[3].trace[0].type",
        "traces[4].id",
    }
    assert "Repeats traces[0]" in details["traces[4].id"][0]
    assert Trace.objects.count() == 0


def test_batches_are_bounded_and_shaped(api_client, gate):
    make_source(gates=(gate,))
    secret = make_token([gate], scopes=["traces:write"])
    too_many = post(api_client, secret, {"traces": [record(f"t-{i}") for i in range(1001)]})
    assert too_many.status_code == 400
    assert "At most 1000" in too_many.json()["error"]["details"]["traces"][0]
    assert post(api_client, secret, {"traces": []}).status_code == 400
    assert post(api_client, secret, {"records": [record("x")]}).status_code == 400
    assert Trace.objects.count() == 0


def test_redaction_removes_emails_and_card_numbers_before_anything_is_stored(api_client, gate):
    make_source(
        gates=(gate,),
        redaction=[
            {"field": "*", "preset": "email"},
            {"field": "*", "preset": "card_number"},
            {"field": "metadata", "pattern": r"session-\w+", "replacement": "session-?"},
        ],
    )
    body = {
        "traces": [
            record(
                "t-1",
                input={
                    "messages": [
                        {"role": "user", "content": "I am ann@example.com, card 4111 1111 1111 1111"}
                    ]
                },
                output="Refund sent to ann@example.com for card 4111-1111-1111-1111.",
                trace=[{"type": "tool_call", "name": "refund", "arguments": {"card": "4111111111111111"}}],
                metadata={"session": "session-abc123", "user": "ann@example.com"},
                feedback={"comment": "write to ann@example.com"},
            )
        ]
    }
    assert post(api_client, make_token([gate], scopes=["traces:write"]), body).status_code == 200
    stored = Trace.objects.get()
    assert stored.input["messages"][0]["content"] == "I am [email], card [card]"
    assert stored.output == "Refund sent to [email] for card [card]."
    assert stored.trace[0]["arguments"] == {"card": "[card]"}
    assert stored.metadata == {"session": "session-?", "user": "[email]"}
    assert stored.feedback_comment == "write to [email]"
    # Nothing of it anywhere in the row, whatever column.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM monitoring_app_trace")
        row = " ".join(str(value) for value in cursor.fetchone())
    assert "ann@example.com" not in row and "4111" not in row


def test_a_token_without_the_traces_scope_is_refused(api_client, gate):
    make_source(gates=(gate,))
    secret = make_token([gate], scopes=["checks:write", "incidents:write"])
    response = post(api_client, secret, {"traces": [record("t-1")]})
    assert response.status_code == 403
    assert "traces:write" in response.json()["error"]["message"]
    assert Trace.objects.count() == 0


def test_a_token_cannot_write_to_another_gates_source(api_client, gate):
    other_gate = make_gate(make_dataset())
    mine = make_source("mine", gates=(gate,))
    make_source("theirs", gates=(other_gate,))
    secret = make_token([gate], scopes=["traces:write"])
    refused = post(api_client, secret, {"traces": [record("t-1", source="theirs")]})
    assert refused.status_code == 400
    assert "not one this token may write to" in refused.json()["error"]["details"]["traces[0].source"][0]
    # Naming no source means the token's only one.
    assert post(api_client, secret, {"traces": [record("t-2")]}).status_code == 200
    assert list(Trace.objects.values_list("source", "client_id")) == [(mine.pk, "t-2")]


def test_a_token_reaching_several_sources_must_name_one(api_client, gate):
    make_source("web", gates=(gate,))
    make_source("mobile", gates=(gate,))
    secret = make_token([gate], scopes=["traces:write"])
    response = post(api_client, secret, {"traces": [record("t-1")]})
    assert response.status_code == 400
    assert "names one" in response.json()["error"]["details"]["traces[0].source"][0]
    assert post(api_client, secret, {"traces": [record("t-1", source="web")]}).status_code == 200


def test_the_same_id_from_two_sources_is_two_traces(api_client, gate):
    make_source("web", gates=(gate,))
    make_source("mobile", gates=(gate,))
    secret = make_token([gate], scopes=["traces:write"])
    body = {"traces": [record("t-1", source="web"), record("t-1", source="mobile")]}
    assert post(api_client, secret, body).json()["stored"] == 2


def test_a_personal_token_needs_the_permission_to_send_traces(api_client, gate):
    from django.contrib.auth.models import Permission

    from gates_app.tokens import create_token

    make_source(gates=(gate,))
    user = make_user()
    _, secret = create_token(name="mine", user=user, actor=user)
    assert post(api_client, secret, {"traces": [record("t-1")]}).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="add_trace"))
    assert post(api_client, secret, {"traces": [record("t-1")]}).status_code == 200


def test_without_credentials_nothing_is_stored(api_client, gate):
    make_source(gates=(gate,))
    assert api_client.post(URL, {"traces": [record("t-1")]}, format="json").status_code == 401
    assert Trace.objects.count() == 0


def test_a_stored_trace_reads_in_the_admin_and_cannot_be_edited(api_client, gate, client):
    make_source(gates=(gate,))
    transcript = [{"type": "tool_call", "name": "lookup_order", "arguments": {"id": 7}, "result": "41 days"}]
    body = {"traces": [record("t-1", trace=transcript, feedback={"thumbs": "down", "comment": "wrong"})]}
    assert post(api_client, make_token([gate], scopes=["traces:write"]), body).status_code == 200
    trace = Trace.objects.get()
    client.force_login(make_user(is_superuser=True, is_staff=True))
    page = client.get(f"/admin/monitoring_app/trace/{trace.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "lookup_order" in html and "latency 812.5 ms" in html and "Thumbs down" in html
    assert 'name="_save"' not in html
    listing = client.get("/admin/monitoring_app/trace/")
    assert listing.status_code == 200 and "t-1" in listing.content.decode()
    assert client.post(f"/admin/monitoring_app/trace/{trace.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Trace.objects.count() == 1
