"""Transcripts from other tools become trace steps (tests/datasets/corpus/outputs), and a final
turn of only tool calls is graded on those calls instead of counting as missing."""

import json

import pytest
from django.core.exceptions import ValidationError

from grading_app.models import CaseResult, Grade
from grading_app.outputs import parse_outputs
from grading_app.services import start_run
from tests.datasets.corpus_helpers import CORPUS
from tests.factories import make_case, make_dataset, make_grader


def read_outputs(name: str) -> list[dict]:
    lines = (CORPUS / "outputs" / name).read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_responses_api_items_become_messages_tool_calls_retrievals_and_approvals():
    (item,) = parse_outputs(read_outputs("responses_api.jsonl"))

    assert item.trace == [
        {"type": "message", "role": "reasoning", "content": "Check the policy first."},
        {"type": "retrieval", "documents": [{"id": "doc-7", "text": "Refunds within 30 days."}]},
        {
            "type": "tool_call",
            "name": "lookup_order",
            "arguments": {"order": 7},
            "result": '{"paid": "2026-10-01"}',
        },
        {"type": "approval", "tool": "issue_refund", "granted": False, "by": "outside the window"},
        {"type": "message", "role": "assistant", "content": "No: refunds close after 30 days."},
    ]


def test_legacy_function_call_messages_become_tool_calls_with_their_results():
    (item,) = parse_outputs(read_outputs("legacy_function_call.jsonl"))

    assert item.trace == [
        {"type": "message", "role": "user", "content": "Weather in Paris?"},
        {
            "type": "tool_call",
            "name": "get_weather",
            "arguments": {"city": "Paris"},
            "result": '{"celsius": 18}',
        },
        {"type": "message", "role": "assistant", "content": "It is 18 degrees in Paris."},
    ]


def test_an_unknown_responses_item_is_refused_by_path_not_dropped():
    trace = [
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        {"type": "image_generation_call"},
    ]

    with pytest.raises(ValidationError) as refused:
        parse_outputs([{"case": "a", "output": "x", "trace": trace}])

    assert refused.value.message_dict == {
        "outputs[0].trace[1].type": ["Unknown Responses API item type 'image_generation_call'."]
    }


@pytest.mark.django_db
def test_a_final_turn_of_only_tool_calls_is_graded_on_the_calls(django_capture_on_commit_callbacks):
    dataset = make_dataset()
    case = make_case(dataset, "refund-tool", expected={"tools": ["issue_refund"]})
    make_grader("tools", kind="tool_calls")

    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(
            dataset=dataset, candidate="v1", outputs=parse_outputs(read_outputs("tool_only_final_turn.jsonl"))
        )

    result = CaseResult.objects.get(run=run, case=case)
    assert (result.missing, result.error, result.tool_calls) == (False, "", 1)
    assert result.output == {"tool_calls": [{"name": "issue_refund", "arguments": {"order": 7}}]}
    grade = Grade.objects.get(case_result=result)
    assert grade.passed is True
