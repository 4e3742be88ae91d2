"""The fake OpenAI server, exercised through the real openai client (HTTP, retries, streaming, parsing)."""

import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from tests.fake_openai import FakeOpenAI, ToolCall, fault, json_reply, text, tool_calls

MESSAGES = [{"role": "user", "content": "Did the answer pass?"}]


def client_for(fake: FakeOpenAI, *, max_retries: int = 0, timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=max_retries, timeout=timeout)


def ask(client: openai.OpenAI, **kwargs):
    return client.chat.completions.create(model="gpt-fake", messages=MESSAGES, **kwargs)


def test_scripted_text_reply_arrives_with_usage(fake_openai):
    fake_openai.script(text("The answer is correct.", prompt_tokens=11, completion_tokens=5))

    completion = ask(client_for(fake_openai))

    assert completion.choices[0].message.content == "The answer is correct."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-fake"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 5)
    assert completion.usage.total_tokens == 16
    [request] = fake_openai.requests
    assert request["body"]["messages"] == MESSAGES
    assert request["headers"]["authorization"] == "Bearer test"


def test_usage_is_estimated_from_lengths_when_not_scripted(fake_openai):
    fake_openai.script("x" * 40)

    usage = ask(client_for(fake_openai)).usage

    assert usage.completion_tokens == 10  # ~4 characters per token
    assert usage.prompt_tokens == 5  # "Did the answer pass?" is 20 characters


def test_json_reply_parses_and_response_format_is_accepted(fake_openai):
    fake_openai.script(json_reply({"passed": True, "score": 0.9}))

    completion = ask(client_for(fake_openai), response_format={"type": "json_object"})

    assert json.loads(completion.choices[0].message.content) == {"passed": True, "score": 0.9}
    assert fake_openai.requests[0]["body"]["response_format"] == {"type": "json_object"}


def test_tool_calls_arrive_without_streaming(fake_openai):
    fake_openai.script(
        tool_calls(("lookup_order", {"order_id": 42}), ToolCall("issue_refund", {"amount": 9.5}, id="call_1"))
    )

    choice = ask(client_for(fake_openai)).choices[0]

    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = [(call.function.name, json.loads(call.function.arguments)) for call in choice.message.tool_calls]
    assert calls == [("lookup_order", {"order_id": 42}), ("issue_refund", {"amount": 9.5})]
    assert choice.message.tool_calls[1].id == "call_1"


def test_streamed_tool_call_pieces_reassemble_to_the_arguments(fake_openai):
    arguments = {"query": "refund policy for damaged items", "top_k": 3}
    fake_openai.script(tool_calls(("search", arguments), ("lookup_order", {"order_id": 7})))

    names, ids, pieces, finish = {}, {}, {}, None
    for chunk in ask(client_for(fake_openai), stream=True):
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for call in choice.delta.tool_calls or []:
            if call.id:
                ids[call.index] = call.id
            if call.function.name:
                names[call.index] = call.function.name
            pieces.setdefault(call.index, []).append(call.function.arguments or "")

    assert names == {0: "search", 1: "lookup_order"}
    assert ids[0] != ids[1]
    assert len([piece for piece in pieces[0] if piece]) > 1
    assert json.loads("".join(pieces[0])) == arguments
    assert json.loads("".join(pieces[1])) == {"order_id": 7}
    assert finish == "tool_calls"


def test_streaming_yields_content_in_several_chunks_and_usage_when_asked(fake_openai):
    fake_openai.script(text("The answer cites the refund policy correctly.", completion_tokens=8))

    chunks = list(ask(client_for(fake_openai), stream=True, stream_options={"include_usage": True}))

    pieces = [
        chunk.choices[0].delta.content for chunk in chunks if chunk.choices and chunk.choices[0].delta.content
    ]
    assert len(pieces) >= 5
    assert "".join(pieces) == "The answer cites the refund policy correctly."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 8
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_streaming_without_include_usage_sends_no_usage(fake_openai):
    fake_openai.script("two words")

    chunks = list(ask(client_for(fake_openai), stream=True))

    assert all(chunk.usage is None and chunk.choices for chunk in chunks)


def test_first_stream_chunk_waits_for_the_first_token_delay(fake_openai):
    fake_openai.first_token_delay_s = 0.2
    fake_openai.script("slow to start")

    started = time.monotonic()
    stream = ask(client_for(fake_openai), stream=True)
    next(iter(stream))
    time_to_first_token = time.monotonic() - started
    list(stream)

    assert 0.2 <= time_to_first_token < 1.0


def test_client_retries_a_429_and_then_gets_the_reply(fake_openai):
    fake_openai.script(fault("429"), text("after the retry"))

    started = time.monotonic()
    completion = ask(client_for(fake_openai, max_retries=2))

    assert completion.choices[0].message.content == "after the retry"
    assert len(fake_openai.requests) == 2
    # retry-after-ms: 1 makes the client retry at once instead of backing off ~0.5 s.
    assert time.monotonic() - started < 0.3


def test_429_without_retries_raises_rate_limit_error(fake_openai):
    fake_openai.script(fault("429"))

    with pytest.raises(openai.RateLimitError):
        ask(client_for(fake_openai))


def test_timeout_fault_raises_api_timeout_error(fake_openai):
    fake_openai.script(fault("timeout"))

    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        ask(client_for(fake_openai, timeout=0.5, max_retries=0))

    assert time.monotonic() - started < 2.0


def test_bad_json_fault_answers_prose_and_malformed_body_breaks_parsing(fake_openai):
    fake_openai.script(fault("bad_json"), fault("malformed_body"))
    client = client_for(fake_openai)

    content = ask(client, response_format={"type": "json_object"}).choices[0].message.content
    assert content == "I think it passed"
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)
    with pytest.raises(json.JSONDecodeError):
        ask(client)


def test_unscripted_request_fails_loudly_without_retry(fake_openai):
    with pytest.raises(openai.InternalServerError, match="no scripted reply"):
        ask(client_for(fake_openai, max_retries=2))

    assert fake_openai.calls == 1


def test_default_reply_serves_once_the_script_is_used_up(fake_openai):
    fake_openai.script("first")
    fake_openai.default("again")
    client = client_for(fake_openai)

    answers = [ask(client).choices[0].message.content for _ in range(3)]

    assert answers == ["first", "again", "again"]


def test_models_endpoint_lists_one_model(fake_openai):
    assert [model.id for model in client_for(fake_openai).models.list()] == ["gpt-fake"]


def test_parallel_requests_overlap_under_latency(fake_openai):
    # Long enough that all eight are in flight together even on a loaded machine (the suite
    # runs on every core), short enough to show they overlapped: serial would take 4 s.
    fake_openai.latency_s = 0.5
    fake_openai.default("ok")
    client = client_for(fake_openai)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: ask(client).choices[0].message.content, range(8)))
    elapsed = time.monotonic() - started

    assert answers == ["ok"] * 8
    assert fake_openai.calls == 8
    assert fake_openai.max_in_flight == 8
    assert elapsed < 2.5  # serial would take 8 * 0.5 s


def injected_faults(fake: FakeOpenAI, seed: int, count: int = 30) -> list[str | None]:
    fake.faults(rate=0.3, kinds=("429", "500", "bad_json", "malformed_body"), seed=seed)
    client = client_for(fake)
    first = len(fake.requests)
    for _ in range(count):
        with contextlib.suppress(openai.APIError, json.JSONDecodeError):
            ask(client)
    served = fake.requests[first:]
    return [request["reply"].kind if request["injected"] else None for request in served]


def test_fault_injection_is_deterministic_for_a_seed(fake_openai):
    fake_openai.default("ok")

    first, again, other_seed = (injected_faults(fake_openai, seed) for seed in (7, 7, 8))

    assert first == again
    assert first != other_seed
    assert 0 < sum(kind is not None for kind in first) < len(first)


def test_injected_faults_do_not_consume_the_script(fake_openai):
    fake_openai.script("scripted")
    fake_openai.faults(rate=1.0, kinds=("500",))
    client = client_for(fake_openai)
    with pytest.raises(openai.InternalServerError):
        ask(client)

    fake_openai.faults(rate=0.0)

    assert ask(client).choices[0].message.content == "scripted"
