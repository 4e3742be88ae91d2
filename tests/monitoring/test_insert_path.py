"""The COPY path that stores traces on PostgreSQL writes exactly what the ORM would."""

import datetime as dt

import pytest
from django.forms.models import model_to_dict

from monitoring_app.ingest import insert_traces
from monitoring_app.models import Trace
from tests.factories import make_source

pytestmark = pytest.mark.django_db


def row(source, client_id, **fields):
    return {
        "source_id": source.pk,
        "origin": "otlp",
        "client_id": client_id,
        "time": dt.datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=dt.UTC),
        "release": "v7",
        "input": {
            "messages": [{"role": "user", "content": 'Rückgabe nach 40 Tagen? \\u2028 "quoted"\\ttab'}]
        },
        "output": None,
        "trace": [{"type": "tool_call", "name": "lookup", "arguments": {"id": 7, "deep": [1, {"a": None}]}}],
        "latency_ms": 812.5,
        "input_tokens": 40,
        "refused": False,
        "tool_calls": 1,
        "trace_steps": 1,
        "thumbs": "down",
        "feedback_comment": "tab\\there, newline\\nthere, backslash \\\\",
        "metadata": {"route": "refunds", "list": ["x", 1.5, True, None]},
        **fields,
    }


def test_copy_and_the_orm_store_the_same_row():
    source = make_source()
    written = insert_traces([row(source, "fast"), row(source, "fast-2", output={"json": [1, 2]})])
    assert sorted(c for _, c in written) == ["fast", "fast-2"]
    Trace.objects.bulk_create(
        [Trace(**row(source, "orm")), Trace(**row(source, "orm-2", output={"json": [1, 2]}))]
    )
    ignored = ("id", "client_id")
    by_id = {t.client_id: t for t in Trace.objects.all()}
    for fast, orm in (("fast", "orm"), ("fast-2", "orm-2")):
        assert model_to_dict(by_id[fast], exclude=ignored) == model_to_dict(by_id[orm], exclude=ignored)
        assert by_id[fast].received_at is not None and by_id[fast].output == by_id[orm].output
    assert by_id["fast"].output is None  # SQL NULL, as the ORM stores None, not JSON null
    assert Trace.objects.filter(client_id="fast", output__isnull=True).exists()


def test_ids_already_stored_are_skipped_not_doubled():
    source = make_source()
    insert_traces([row(source, "a")])
    again = insert_traces([row(source, "a"), row(source, "b")])
    assert [c for _, c in again] == ["b"]
    assert Trace.objects.filter(source=source).count() == 2
