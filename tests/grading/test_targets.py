"""Targets produce the candidate's outputs: a chat model (streamed) or the team's own HTTP service."""

import json

import pytest
from django.core.exceptions import ValidationError

from grading_app.models import CaseResult, Grade, Run
from grading_app.services import save_target, start_run
from tests.factories import make_endpoint, make_grader, make_scenario
from tests.fake_openai import fault, text, tool_calls
from tests.json_service import json_service

pytestmark = pytest.mark.django_db

TOOLS = [{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}]


def chat_target(fake, **config):
    endpoint = make_endpoint(fake.base_url, price_in_per_mtok=1.0, price_out_per_mtok=4.0)
    return save_target(
        slug="chat",
        kind="openai_chat",
        endpoint=endpoint,
        config={"model": "candidate-model", "system_prompt": "You are Northwind's support bot.", **config},
    )


def test_openai_chat_target_streams_and_records_ttft_tokens_cost(
    fake_openai, django_capture_on_commit_callbacks
):
    s = make_scenario(n_trusted=2, n_monitoring=0)
    target = chat_target(fake_openai)
    fake_openai.first_token_delay_s = 0.05
    fake_openai.chunk_delay_s = 0.01
    fake_openai.default(text("No, refunds close after 30 days.", prompt_tokens=200, completion_tokens=10))
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=s["dataset"], candidate="model-v2", target=target)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.target == target
    for result in CaseResult.objects.filter(run=run):
        assert result.output == "No, refunds close after 30 days."
        assert result.ttft_ms >= 50
        assert result.latency_ms > result.ttft_ms  # the rest of the stream came after the first token
        assert (result.input_tokens, result.output_tokens) == (200, 10)
        assert result.cost_usd == pytest.approx((200 * 1.0 + 10 * 4.0) / 1e6)
        assert result.retries == 0
    request = fake_openai.requests[0]["body"]
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}
    assert request["messages"][0] == {"role": "system", "content": "You are Northwind's support bot."}
    assert request["messages"][1]["content"] == "Can I get a refund after 40 days?"


def test_openai_chat_target_records_the_tool_calls_the_model_asked_for(
    fake_openai, django_capture_on_commit_callbacks
):
    s = make_scenario(n_trusted=1, n_monitoring=0)
    s["cases"][0].expected = {"answer": "No", "tools": ["lookup_order"], "max_tool_calls": 1}
    s["cases"][0].save()
    make_grader("tools", kind="tool_calls")
    target = chat_target(fake_openai, tools=TOOLS)
    fake_openai.default(
        tool_calls(("lookup_order", {"order_id": "NW-10234"}), ("lookup_order", {"order_id": "x"}))
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=s["dataset"], candidate="m", target=target)
    result = CaseResult.objects.get(run=run)
    assert [step["name"] for step in result.trace] == ["lookup_order", "lookup_order"]
    assert result.trace[0]["arguments"] == {"order_id": "NW-10234"}
    assert result.tool_calls == 2 and result.trace_steps == 2
    assert fake_openai.requests[0]["body"]["tools"] == TOOLS
    tool_grade = Grade.objects.get(case_result=result, grader__slug="tools")
    assert tool_grade.passed is False  # two calls where at most one was allowed: tool churn


def test_openai_chat_target_retries_and_counts_them(fake_openai, django_capture_on_commit_callbacks):
    s = make_scenario(n_trusted=1, n_monitoring=0)
    target = chat_target(fake_openai)
    fake_openai.script(fault("429"), text("No"))
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=s["dataset"], candidate="m", target=target)
    result = CaseResult.objects.get(run=run)
    assert result.output == "No" and result.retries == 1


def test_a_target_that_keeps_failing_records_an_error_not_an_output(
    fake_openai, django_capture_on_commit_callbacks
):
    s = make_scenario(n_trusted=1, n_monitoring=0)
    target = chat_target(fake_openai)
    target.endpoint.max_retries = 0
    target.endpoint.save()
    fake_openai.default(fault("500"))
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=s["dataset"], candidate="m", target=target)
    result = CaseResult.objects.get(run=run)
    assert result.output is None and "InternalServerError" in result.error
    assert not Grade.objects.filter(case_result=result).exists()
    assert Run.objects.get(pk=run.pk).error_cases == 1


TEAM_ANSWER = {
    "output": "No",
    "trace": [{"type": "tool_call", "name": "policy_lookup", "arguments": {"topic": "refunds"}}],
    "metrics": {"latency_ms": 321.0, "refused": False, "escalated": False},
}


@pytest.fixture
def team_service():
    """The team's own system: answers each case with output, trace and metrics."""
    with json_service(lambda body: TEAM_ANSWER) as service:
        yield service


def test_http_target_posts_each_case_and_records_what_the_service_reports(
    team_service, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setenv("TEAM_KEY", "s3cret")
    s = make_scenario(n_trusted=2, n_monitoring=0)
    target = save_target(
        slug="svc", kind="http", config={"url": team_service.url, "headers_env": {"X-Api-Key": "TEAM_KEY"}}
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=s["dataset"], candidate="svc-v1", target=target)
    assert sorted(body["case"] for body in team_service.bodies) == ["t0", "t1"]
    assert all(headers["X-Api-Key"] == "s3cret" for _, headers in team_service.received)
    assert team_service.bodies[0]["input"]["messages"][0]["role"] == "user"
    for result in CaseResult.objects.filter(run=run):
        assert result.output == "No" and result.latency_ms == 321.0 and result.refused is False
        assert result.tool_calls == 1
    assert Grade.objects.filter(case_result__run=run, passed=True).count() == 2


def test_target_config_is_validated_against_its_kind():
    with pytest.raises(ValidationError, match=r"config\.url"):
        save_target(slug="bad", kind="http", config={})
    with pytest.raises(ValidationError, match="endpoint"):
        save_target(slug="bad2", kind="openai_chat", config={"model": "m"})
    with pytest.raises(ValidationError, match=r"config\.temperature"):
        save_target(slug="bad3", kind="http", config={"url": "http://127.0.0.1:1/x", "temperature": 1})


def test_a_run_takes_outputs_or_a_live_target_not_both(fake_openai):
    s = make_scenario(n_trusted=1, n_monitoring=0)
    with pytest.raises(ValidationError):
        start_run(dataset=s["dataset"], candidate="m", outputs=[], target=chat_target(fake_openai))
    with pytest.raises(ValidationError):
        start_run(dataset=s["dataset"], candidate="m")


ORDER = {"order_id": "NW-10234", "status": "lost in transit", "refundable": True}


def with_tool_results(case, **results):
    case.input = {**case.input, "tool_results": results}
    case.save()


def test_a_tool_the_case_declares_a_result_for_is_answered_with_it_and_the_model_asked_again(
    fake_openai, django_capture_on_commit_callbacks
):
    s = make_scenario(n_trusted=1, n_monitoring=0)
    with_tool_results(s["cases"][0], lookup_order=ORDER)
    target = chat_target(fake_openai, tools=TOOLS)
    fake_openai.script(
        tool_calls(("lookup_order", {"order_id": "NW-10234"}), prompt_tokens=100, completion_tokens=10),
        text(
            "Your parcel was lost in transit, so I've started a refund.",
            prompt_tokens=150,
            completion_tokens=20,
        ),
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=s["dataset"], candidate="m", target=target)
    result = CaseResult.objects.get(run=run)

    first, second = (r["body"]["messages"] for r in fake_openai.requests)
    assert len(first) == 2 and len(second) == 4  # system, user; then the call and its result
    call = second[2]["tool_calls"][0]
    assert call["function"]["name"] == "lookup_order"
    assert second[3] == {
        "role": "tool",
        "tool_call_id": call["id"],
        "content": json.dumps(ORDER, sort_keys=True),
    }
    assert result.output == "Your parcel was lost in transit, so I've started a refund."
    assert result.trace == [
        {"type": "tool_call", "name": "lookup_order", "arguments": {"order_id": "NW-10234"}, "result": ORDER},
        {"type": "message", "role": "assistant", "content": result.output},
    ]
    assert (result.input_tokens, result.output_tokens) == (250, 30)  # both calls of the model
    assert result.cost_usd == pytest.approx((250 * 1.0 + 30 * 4.0) / 1e6)
    assert result.tool_calls == 1 and not result.error


def test_a_model_that_keeps_calling_declared_tools_is_stopped_with_an_error(
    fake_openai, django_capture_on_commit_callbacks
):
    s = make_scenario(n_trusted=1, n_monitoring=0)
    with_tool_results(s["cases"][0], lookup_order=ORDER)
    target = chat_target(fake_openai, tools=TOOLS, max_tool_rounds=3)
    fake_openai.default(tool_calls(("lookup_order", {"order_id": "NW-10234"})))
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=s["dataset"], candidate="m", target=target)
    result = CaseResult.objects.get(run=run)

    assert len(fake_openai.requests) == 3
    assert (
        result.error
        == "the model was still calling tools after 3 calls answered with the case's tool results"
    )
    assert result.output is None and [step["name"] for step in result.trace] == ["lookup_order"] * 3
    assert not Grade.objects.filter(case_result=result).exists()  # an error is never a pass


def test_a_call_of_a_tool_the_case_declares_nothing_for_ends_the_answer_as_before(
    fake_openai, django_capture_on_commit_callbacks
):
    s = make_scenario(n_trusted=1, n_monitoring=0)
    with_tool_results(s["cases"][0], lookup_order=ORDER)
    target = chat_target(fake_openai, tools=TOOLS)
    fake_openai.default(tool_calls(("issue_refund", {"order_id": "NW-10234"})))
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=s["dataset"], candidate="m", target=target)
    result = CaseResult.objects.get(run=run)

    assert len(fake_openai.requests) == 1
    assert result.trace == [
        {"type": "tool_call", "name": "issue_refund", "arguments": {"order_id": "NW-10234"}}
    ]


def test_tool_results_and_max_tool_rounds_are_validated(fake_openai):
    from datasets_app import services as datasets
    from tests.factories import make_dataset, make_failure_class, make_user

    with pytest.raises(ValidationError, match=r"input\.tool_results must be an object"):
        datasets.add_case(
            dataset=make_dataset(),
            key="bad-tools",
            failure_class=make_failure_class(),
            input={"messages": [{"role": "user", "content": "Where is it?"}], "tool_results": ["lost"]},
            expected={},
            actor=make_user(roles=("Domain expert",)),
        )
    for wrong in (0, 21, True):
        with pytest.raises(ValidationError, match=r"config\.max_tool_rounds: must be between 1 and 20"):
            chat_target(fake_openai, max_tool_rounds=wrong)


def test_a_declared_search_result_is_a_retrieval_the_citation_grader_checks_the_answer_against(
    fake_openai, django_capture_on_commit_callbacks
):
    """The essay's case through a live target: the model retrieved the right document and still
    misused it ("90 days [doc-1]" where doc-1 says 30)."""
    s = make_scenario(n_trusted=1, n_monitoring=0)
    policy = {"id": "doc-1", "text": "Refunds are accepted within 30 days of delivery."}
    with_tool_results(s["cases"][0], search_policies={"documents": [policy]})
    s["cases"][0].expected = {"citations": ["doc-1"]}
    s["cases"][0].save()
    make_grader("cites", kind="citation_support")
    target = chat_target(fake_openai, tools=TOOLS)
    fake_openai.script(
        tool_calls(("search_policies", {"query": "refund window"})),
        text("You can get a refund within 90 days [doc-1]."),
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=s["dataset"], candidate="m", target=target)
    result = CaseResult.objects.get(run=run)

    assert [step["type"] for step in result.trace] == ["tool_call", "retrieval", "message"]
    assert result.trace[1] == {"type": "retrieval", "tool": "search_policies", "documents": [policy]}
    cited = Grade.objects.get(case_result=result, grader__slug="cites")
    assert cited.passed is False and cited.rationale == "sentence 1: '90' not in doc-1"
