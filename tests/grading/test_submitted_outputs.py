"""Submitted outputs are stored as sent (COPY on PostgreSQL, the ORM elsewhere): every JSON
shape an output, trace or metrics can take comes back equal, and a null output stays null."""

import pytest

from grading_app.models import SubmittedOutput
from grading_app.outputs import OutputItem
from grading_app.services.runs import add_outputs, open_run
from tests.factories import make_case, make_dataset

pytestmark = pytest.mark.django_db

SENT = [
    OutputItem("plain", "No, refunds close after 30 days"),
    OutputItem("unicode", 'Nein \u2014 \u00e9t\u00e9 \U0001f600 \\ "quoted"\ttab\nline'),
    OutputItem("structured", {"answer": "No", "citations": ["doc-1"], "score": 0.5, "ok": True}),
    OutputItem("tool-only", None, trace=[{"type": "tool_call", "name": "refund", "args": {"id": 7}}]),
    OutputItem("metrics", "Yes", metrics={"latency_ms": 812.5, "input_tokens": 40, "refused": False}),
]


def test_outputs_come_back_as_they_were_sent():
    dataset = make_dataset()
    for item in SENT:
        make_case(dataset, item.case)
    run = open_run(dataset=dataset, candidate="v1")
    add_outputs(run, SENT)
    stored = {o.case_key: o for o in SubmittedOutput.objects.filter(run=run)}
    assert sorted(stored) == sorted(item.case for item in SENT)
    for item in SENT:
        row = stored[item.case]
        assert (row.output, row.trace, row.metrics) == (item.output, item.trace, item.metrics), item.case
    # A null output is SQL NULL, not the JSON value null: "no output" reads the same on every path.
    assert SubmittedOutput.objects.filter(run=run, output__isnull=True).count() == 1
