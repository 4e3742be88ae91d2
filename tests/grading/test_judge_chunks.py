"""Runs with LLM work are chunked in whole waves of their endpoints' concurrency; the judge
path does its own work in a constant number of queries per chunk."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from datasets_app.models import Case
from grading_app import jobs, judging, llm
from grading_app.graders.base import GradingInput
from grading_app.models import Grade, JudgeCacheEntry
from grading_app.outputs import parse_outputs
from grading_app.services import save_target, start_run
from tests.factories import make_endpoint, make_failure_class, make_grader, make_rubric_version, make_scenario
from tests.fake_openai import json_reply

pytestmark = pytest.mark.django_db

PASS = {"score": 1, "passed": True, "rationale": "fine"}


def dataset_of(n: int):
    """The scenario's dataset grown to ``n`` active trusted cases (the extra ones bulk-created)."""
    s = make_scenario(n_trusted=4, n_monitoring=0)
    failure_class = make_failure_class("extra")
    Case.objects.bulk_create(
        Case(
            dataset=s["dataset"],
            key=f"x{i}",
            tier="trusted",
            status="active",
            failure_class=failure_class,
            input={"messages": [{"role": "user", "content": f"Question {i}"}]},
            expected={"answer": "No"},
        )
        for i in range(n - 4)
    )
    return s["dataset"]


def dispatched_chunk_sizes(dataset, django_capture_on_commit_callbacks, **run) -> list[int]:
    """Start a run without running its jobs; the sizes of its chunks in order."""
    if "target" not in run:
        keys = Case.objects.filter(dataset=dataset).values_list("key", flat=True)
        run["outputs"] = parse_outputs([{"case": key, "output": "No"} for key in keys])
    with django_capture_on_commit_callbacks(execute=False):
        started = start_run(dataset=dataset, candidate="v1", **run)
    return [len(ids) for ids in started.chunks.order_by("index").values_list("case_ids", flat=True)]


def judge_on(concurrency: int, base_url: str = "http://127.0.0.1:9/v1"):
    version = make_rubric_version(make_endpoint(base_url, max_concurrency=concurrency))
    return make_grader("helpful", kind="llm_judge", rubric=version.rubric)


def test_a_judge_run_is_chunked_in_whole_waves_of_its_endpoint(settings, django_capture_on_commit_callbacks):
    # 100 cases at 16 in flight are 7 waves, the last one 4 calls strong; 112 take the same
    # 7 waves, all full: rounding up keeps a chunk's duration and fills its waves.
    settings.EVALGATE_CHUNK_SIZE = 100
    dataset = dataset_of(250)
    judge_on(concurrency=16)
    assert dispatched_chunk_sizes(dataset, django_capture_on_commit_callbacks) == [112, 112, 26]


def test_a_run_of_code_graders_is_chunked_by_the_code_chunk_size(
    settings, django_capture_on_commit_callbacks
):
    settings.EVALGATE_CHUNK_SIZE = 7  # for model calls: not this run's
    settings.EVALGATE_CODE_CHUNK_SIZE = 100
    dataset = dataset_of(250)
    assert dispatched_chunk_sizes(dataset, django_capture_on_commit_callbacks) == [100, 100, 50]


def test_a_run_with_a_judge_is_not_chunked_by_the_code_chunk_size(
    settings, django_capture_on_commit_callbacks
):
    settings.EVALGATE_CHUNK_SIZE = 16
    settings.EVALGATE_CODE_CHUNK_SIZE = 1000
    dataset = dataset_of(40)
    judge_on(concurrency=16)
    assert dispatched_chunk_sizes(dataset, django_capture_on_commit_callbacks) == [16, 16, 8]


def test_a_chunk_size_given_to_a_run_of_code_graders_wins(settings, django_capture_on_commit_callbacks):
    settings.EVALGATE_CODE_CHUNK_SIZE = 1000
    dataset = dataset_of(25)
    assert dispatched_chunk_sizes(dataset, django_capture_on_commit_callbacks, chunk_size=10) == [10, 10, 5]


def test_a_chunk_size_given_to_the_run_is_rounded_as_well(django_capture_on_commit_callbacks):
    dataset = dataset_of(450)
    judge_on(concurrency=16)
    sizes = dispatched_chunk_sizes(dataset, django_capture_on_commit_callbacks, chunk_size=200)
    assert sizes == [208, 208, 34]  # 13 full waves each; 200 would have ended on a wave of 8


def test_an_inactive_judge_does_not_resize_the_chunks(settings, django_capture_on_commit_callbacks):
    settings.EVALGATE_CODE_CHUNK_SIZE = 100
    dataset = dataset_of(150)
    judge = judge_on(concurrency=16)
    judge.active = False
    judge.save()
    assert dispatched_chunk_sizes(dataset, django_capture_on_commit_callbacks) == [100, 50]


def test_a_chat_target_chunks_in_waves_of_its_endpoint(settings, django_capture_on_commit_callbacks):
    settings.EVALGATE_CHUNK_SIZE = 20
    dataset = dataset_of(50)
    target = save_target(
        slug="chat",
        kind="openai_chat",
        config={"model": "m"},
        endpoint=make_endpoint("http://127.0.0.1:9/v1", max_concurrency=6),
    )
    sizes = dispatched_chunk_sizes(dataset, django_capture_on_commit_callbacks, target=target)
    assert sizes == [24, 24, 2]


def test_a_target_and_a_judge_chunk_in_waves_of_both(settings, django_capture_on_commit_callbacks):
    # The target's calls go 8 at a time (HTTP_TARGET_CONCURRENCY), the judge's 12: 24 fills both.
    settings.EVALGATE_CHUNK_SIZE = 40
    dataset = dataset_of(100)
    judge_on(concurrency=12)
    target = save_target(slug="svc", kind="http", config={"url": "http://127.0.0.1:9/answer"})
    sizes = dispatched_chunk_sizes(dataset, django_capture_on_commit_callbacks, target=target)
    assert sizes == [48, 48, 4]


def test_when_the_common_multiple_exceeds_the_chunk_size_the_largest_concurrency_decides(
    settings, django_capture_on_commit_callbacks
):
    settings.EVALGATE_CHUNK_SIZE = 10  # below lcm(8, 12) = 24
    dataset = dataset_of(30)
    judge_on(concurrency=12)
    target = save_target(slug="svc", kind="http", config={"url": "http://127.0.0.1:9/answer"})
    sizes = dispatched_chunk_sizes(dataset, django_capture_on_commit_callbacks, target=target)
    assert sizes == [12, 12, 6]


def tasks(version, n: int, salt: str = "") -> list[judging.JudgeTask]:
    items = [GradingInput(case_input={}, expected={}, output=f"answer {salt}{i}") for i in range(n)]
    return [
        judging.JudgeTask(ref=i, version=version, prompt=judging.render_prompt(version, item, {}))
        for i, item in enumerate(items)
    ]


def test_judge_cache_queries_do_not_grow_with_the_calls_of_a_chunk(fake_openai):
    fake_openai.default(json_reply(PASS))
    version = make_rubric_version(make_endpoint(fake_openai.base_url, max_concurrency=4))
    counts = []
    for n in (2, 20):
        with CaptureQueriesContext(connection) as queries:
            outcomes = judging.run_judges(tasks(version, n, salt=str(n)))
        assert all(o.passed for o in outcomes.values()) and len(outcomes) == n
        counts.append(sum("judgecacheentry" in q["sql"].lower() for q in queries.captured_queries))
    # Per chunk, whatever its size:
    # 1. SELECT the cached answers for every task's key
    # 2. SQLite: INSERT the fresh answers (ON CONFLICT DO NOTHING)
    #    PostgreSQL: CREATE TEMPORARY TABLE IF NOT EXISTS (the staging table), then COPY into it
    #    (not captured), INSERT ... SELECT ... ON CONFLICT DO NOTHING, TRUNCATE the staging table
    assert counts == ([4, 4] if connection.vendor == "postgresql" else [2, 2])
    assert JudgeCacheEntry.objects.count() == 22
    assert fake_openai.calls == 22


def test_the_first_answer_cached_for_a_prompt_wins(fake_openai):
    version = make_rubric_version(make_endpoint(fake_openai.base_url))
    (task,) = tasks(version, 1)
    entry = {"key": task.key, "model": version.model, "rubric_version_id": version.pk, "rationale": ""}
    judging.remember([{**entry, "score": 1.0, "passed": True, "raw_response": PASS}])
    judging.remember([{**entry, "score": 0.0, "passed": False, "raw_response": {}}])  # another worker, later
    cached = JudgeCacheEntry.objects.get()
    assert (cached.score, cached.passed, cached.raw_response) == (1.0, True, PASS)
    (outcome,) = judging.run_judges([task]).values()
    assert outcome.cached and outcome.passed is True
    assert fake_openai.calls == 0


def test_a_judge_call_sends_what_chat_completions_create_sends(fake_openai):
    # judge() goes through client.post() to skip create()'s per-call validation and models;
    # the request on the wire must stay the same (body, auth, the client's own headers).
    endpoint = make_endpoint(fake_openai.base_url)
    fake_openai.default(json_reply(PASS))
    llm.judge(endpoint, "judge-model", "the prompt")
    llm.client_for(endpoint).chat.completions.create(
        model="judge-model",
        messages=[{"role": "user", "content": "the prompt"}],
        temperature=0,
        response_format={"type": "json_object"},
    )
    ours, theirs = fake_openai.requests
    assert ours["body"] == theirs["body"]
    assert (ours["method"], ours["path"]) == (theirs["method"], theirs["path"])
    per_request = {"x-stainless-retry-count", "x-stainless-read-timeout", "content-length"}
    assert {k: v for k, v in ours["headers"].items() if k not in per_request} == {
        k: v for k, v in theirs["headers"].items() if k not in per_request
    }


def test_a_completion_without_a_message_is_an_invalid_answer_never_a_crash():
    assert llm.completion_parts({"object": "error"}) == (None, {})
    assert llm.completion_parts({"choices": [{"message": {"content": None}}]}) == (None, {})
    with pytest.raises(llm.JudgeError, match="not a chat completion"):
        llm.completion_parts("<html>502</html>")
    with pytest.raises(llm.JudgeError, match="not JSON"):
        llm.parse_judge_json(llm.completion_parts({"choices": []})[0])


def test_a_judge_chunk_runs_the_same_queries_for_few_cases_as_for_many(
    fake_openai, django_capture_on_commit_callbacks
):
    fake_openai.default(json_reply(PASS))
    judge_on(concurrency=4, base_url=fake_openai.base_url)
    counts = []
    for n in (5, 20):  # both within one SQLite insert batch (999 parameters: 40 grades fill 520)
        dataset = dataset_of(n)
        keys = Case.objects.filter(dataset=dataset).values_list("key", flat=True)
        outputs = parse_outputs([{"case": key, "output": f"No, {key} ({n})"} for key in keys])
        with django_capture_on_commit_callbacks(execute=False):
            run = start_run(dataset=dataset, candidate=f"v{n}", outputs=outputs, chunk_size=100)
        (chunk,) = run.chunks.all()
        with CaptureQueriesContext(connection) as queries:
            jobs.grade_chunk(chunk.pk)
        counts.append(len(queries.captured_queries))
        judged = Grade.objects.filter(case_result__run=run, grader__slug="helpful", passed=True)
        assert judged.count() == n
    # No query per case or per judge call: prompts, cache lookups and grades are per chunk.
    assert counts[0] == counts[1]
