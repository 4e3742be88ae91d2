"""Multi-turn cases end to end (issue 14, item 7), through the real openai client and the local
OpenAI-compatible server: a three-turn scripted conversation on an openai_chat target and on an
http target, a simulated user, each graded by a judge whose prompt holds the whole transcript;
an unapproved persona, failures mid-conversation, trials, and a gate verdict through the API."""

import itertools
import json
import re

import pytest
from django.urls import reverse

from datasets_app import services as datasets
from datasets_app.models import Case
from grading_app import services as grading
from grading_app.models import CaseResult, Grade, Run
from grading_app.models.rubrics import CONVERSATION_PROMPT_TEMPLATE, SIMULATED_USER_PROMPT_TEMPLATE
from grading_app.services import retire_rubric_version, save_target, start_run
from grading_app.targets.openai_chat import TOOL_NOT_RUN
from tests.factories import (
    make_dataset,
    make_endpoint,
    make_failure_class,
    make_gate,
    make_grader,
    make_rubric_version,
    make_token,
    make_user,
)
from tests.fake_openai import FakeOpenAI, fault, json_reply, text, tool_calls
from tests.json_service import json_service

pytestmark = pytest.mark.django_db

SCRIPT = ["My order A-17 has not arrived.", "It was due on Monday.", "Can you refund it?"]
PERSONA = "You are Dana. Your parcel A-17 is lost and you want your money back; you are polite but firm."


def add_active_case(dataset, key: str, case_input: dict, expected: dict | None = None):
    """A case written through the services (its input validated) and audited by someone else."""
    case = datasets.add_case(
        dataset=dataset,
        key=key,
        failure_class=make_failure_class("conversation"),
        input=case_input,
        expected=expected or {},
        actor=make_user(roles=("Domain expert",)),
    )
    return datasets.audit_case(case, actor=make_user(roles=("Reviewer",)), tier="trusted")


def prompt_of(body: dict) -> str:
    return body["messages"][-1]["content"]


def last_user(body: dict) -> str:
    return next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")


def the_model(body: dict):
    """The target ("candidate-model") answers the user's last turn; the judge passes a
    conversation only if its prompt shows two exchanges or more, each user line followed by the
    target's answer to it; the persona (``persona-model``) asks twice
    and then says it is done."""
    if body["model"] == "candidate-model":
        return text(f"reply to: {last_user(body)}", prompt_tokens=100, completion_tokens=10)
    if body["model"] == "judge-model":
        lines = prompt_of(body).splitlines()
        exchanges = [
            (u[6:], a)
            for u, a in itertools.pairwise(lines)
            if u.startswith("user: ") and a.startswith("assistant: ")
        ]
        seen = len(exchanges) >= 2 and all(a == f"assistant: reply to: {u}" for u, a in exchanges)
        return json_reply({"score": 1 if seen else 0, "passed": seen, "rationale": f"saw all turns: {seen}"})
    turn = int(re.search(r"This is your turn (\d+) of", prompt_of(body)).group(1))
    said = {1: "Where is my parcel A-17?", 2: "Then I want a refund."}
    if turn in said:
        return json_reply({"message": said[turn], "done": False}, prompt_tokens=1000, completion_tokens=20)
    return json_reply(
        {"message": "Thank you, goodbye.", "done": True}, prompt_tokens=1000, completion_tokens=20
    )


def calls_of(fake, model: str) -> list[dict]:
    return [
        r["body"] for r in fake.requests if isinstance(r["body"], dict) and r["body"].get("model") == model
    ]


@pytest.fixture
def world(fake_openai):
    endpoint = make_endpoint(fake_openai.base_url, price_in_per_mtok=1.0, price_out_per_mtok=2.0)
    judge = make_rubric_version(
        endpoint, prompt_template=CONVERSATION_PROMPT_TEMPLATE, criteria="Resolve the customer's problem."
    )
    make_grader("conversation-judge", kind="llm_judge", rubric=judge.rubric)
    persona = make_rubric_version(
        endpoint, model="persona-model", prompt_template=SIMULATED_USER_PROMPT_TEMPLATE, criteria=PERSONA
    )
    fake_openai.responder(the_model)
    chat = save_target(
        slug="chat",
        kind="openai_chat",
        endpoint=endpoint,
        config={"model": "candidate-model", "system_prompt": "You are Northwind's support bot."},
    )
    return {"endpoint": endpoint, "judge": judge, "persona": persona, "chat": chat, "dataset": make_dataset()}


def run_target(world, target, capture, trials: int = 1) -> Run:
    with capture(execute=True):
        run = start_run(dataset=world["dataset"], candidate="v1", target=target, trials=trials)
    run.refresh_from_db()
    return run


def judge_prompt(fake) -> str:
    (body,) = calls_of(fake, "judge-model")
    return prompt_of(body)


def test_a_three_turn_scripted_conversation_on_an_openai_chat_target_is_judged_on_its_transcript(
    world, fake_openai, django_capture_on_commit_callbacks
):
    add_active_case(world["dataset"], "lost-parcel", {"turns": SCRIPT})
    run = run_target(world, world["chat"], django_capture_on_commit_callbacks)

    assert run.status == "succeeded" and run.error_cases == 0
    sent = calls_of(fake_openai, "candidate-model")
    assert [len(body["messages"]) for body in sent] == [2, 4, 6]  # system prompt, then two per turn
    assert sent[2]["messages"] == [
        {"role": "system", "content": "You are Northwind's support bot."},
        {"role": "user", "content": SCRIPT[0]},
        {"role": "assistant", "content": f"reply to: {SCRIPT[0]}"},
        {"role": "user", "content": SCRIPT[1]},
        {"role": "assistant", "content": f"reply to: {SCRIPT[1]}"},
        {"role": "user", "content": SCRIPT[2]},
    ]
    result = CaseResult.objects.get(run=run)
    assert result.output == f"reply to: {SCRIPT[2]}"  # the last assistant message is graded
    assert [(s["role"], s["content"]) for s in result.trace] == [
        (role, content)
        for turn in SCRIPT
        for role, content in (("user", turn), ("assistant", f"reply to: {turn}"))
    ]
    assert result.trace_steps == 6
    assert (result.input_tokens, result.output_tokens) == (300, 30)  # summed over the three turns
    assert result.cost_usd == pytest.approx((300 * 1.0 + 30 * 2.0) / 1e6)
    assert result.ttft_ms < result.latency_ms

    prompt = judge_prompt(fake_openai)
    tag = re.search(r"<(untrusted-output-[0-9a-f]{16})>", prompt).group(1)
    transcript = "\n".join(f"user: {t}\nassistant: reply to: {t}" for t in SCRIPT)
    assert f"<{tag}>\n{transcript}\n</{tag}>" in prompt
    grade = Grade.objects.get(case_result=result)
    assert (grade.passed, grade.rubric_version) == (True, world["judge"])


def test_tool_calls_mid_conversation_stay_in_the_messages_and_the_trace(
    world, fake_openai, django_capture_on_commit_callbacks
):
    add_active_case(world["dataset"], "lost-parcel", {"turns": SCRIPT}, expected={"tools": ["lookup_order"]})
    make_grader("tools", kind="tool_calls")
    fake_openai.script(text("Let me look."), tool_calls(("lookup_order", {"order_id": "A-17"})))
    run = run_target(world, world["chat"], django_capture_on_commit_callbacks)

    third = calls_of(fake_openai, "candidate-model")[2]["messages"]
    call_id = third[4]["tool_calls"][0]["id"]
    assert third[4]["role"] == "assistant" and third[4]["tool_calls"][0]["function"]["name"] == "lookup_order"
    assert third[5] == {"role": "tool", "tool_call_id": call_id, "content": TOOL_NOT_RUN}
    assert third[6] == {"role": "user", "content": SCRIPT[2]}
    result = CaseResult.objects.get(run=run)
    assert [s["type"] for s in result.trace] == [
        "message",
        "message",
        "message",
        "tool_call",
        "message",
        "message",
    ]
    assert result.tool_calls == 1 and result.tool_sequence == ["lookup_order"]
    assert Grade.objects.get(case_result=result, grader__slug="tools").passed is True
    assert 'assistant called lookup_order({"order_id": "A-17"})' in judge_prompt(fake_openai)


def team_bot(body: dict) -> dict:
    """The team's own chat service: answers each turn it is posted, reporting its own metrics."""
    turn = body["turn"]
    trace = [{"type": "retrieval", "documents": [{"id": "policy-3", "text": "Refunds within 30 days."}]}]
    return {
        "output": f"turn {turn}: noted '{body['messages'][-1]['content']}'",
        "trace": trace if turn == 2 else [],
        "metrics": {"latency_ms": 100.0, "input_tokens": 40, "output_tokens": 8, "escalated": turn == 3},
    }


def test_a_three_turn_scripted_conversation_on_an_http_target_posts_each_turn_with_the_conversation(
    world, fake_openai, django_capture_on_commit_callbacks
):
    add_active_case(world["dataset"], "lost-parcel", {"turns": SCRIPT})
    with json_service(team_bot) as service:
        target = save_target(slug="team-bot", kind="http", config={"url": service.url})
        run = run_target(world, target, django_capture_on_commit_callbacks)

    posts = service.bodies
    assert [p["turn"] for p in posts] == [1, 2, 3]
    assert len({p["conversation_id"] for p in posts}) == 1
    assert all(p["case"] == "lost-parcel" and p["input"] == {"turns": SCRIPT} for p in posts)
    assert posts[2]["messages"] == [
        {"role": "user", "content": SCRIPT[0]},
        {"role": "assistant", "content": f"turn 1: noted '{SCRIPT[0]}'"},
        {"role": "user", "content": SCRIPT[1]},
        {"role": "assistant", "content": f"turn 2: noted '{SCRIPT[1]}'"},
        {"role": "user", "content": SCRIPT[2]},
    ]
    result = CaseResult.objects.get(run=run)
    assert result.output == f"turn 3: noted '{SCRIPT[2]}'"
    assert [s["type"] for s in result.trace] == [
        "message",
        "message",
        "message",
        "retrieval",
        "message",
        "message",
        "message",
    ]
    # What the service reported, summed over its turns; escalated on its last turn.
    assert (result.latency_ms, result.input_tokens, result.output_tokens) == (300.0, 120, 24)
    assert result.escalated is True

    prompt = judge_prompt(fake_openai)
    assert (
        "user: It was due on Monday.\nretrieved: policy-3\nassistant: turn 2: noted 'It was due on Monday.'"
        in prompt
    )
    assert f"user: {SCRIPT[2]}\nassistant: turn 3: noted '{SCRIPT[2]}'" in prompt
    assert Grade.objects.get(case_result=result).passed is False  # the bot never said "reply to: ..."


def simulated_case(world, key: str = "dana", **spec):
    rubric = spec.pop("rubric", world["persona"].rubric.slug)
    return add_active_case(
        world["dataset"],
        key,
        {"simulated_user": {"rubric": rubric, "scenario": "Parcel A-17 is lost.", "max_turns": 4, **spec}},
    )


def test_a_declared_tool_result_mid_conversation_goes_back_to_the_model_and_the_judge_sees_it(
    world, fake_openai, django_capture_on_commit_callbacks
):
    found = {"order": "A-17", "status": "lost"}
    add_active_case(
        world["dataset"], "lost-parcel", {"turns": SCRIPT, "tool_results": {"lookup_order": found}}
    )
    fake_openai.script(
        text("Let me look."),
        tool_calls(("lookup_order", {"order_id": "A-17"})),
        text("It is lost; a refund is on its way."),
    )
    run = run_target(world, world["chat"], django_capture_on_commit_callbacks)

    sent = calls_of(fake_openai, "candidate-model")
    assert len(sent) == 4  # turn 2 took two calls: the tool call, then the answer to its result
    answer_to_result = sent[2]["messages"]
    assert answer_to_result[-1]["role"] == "tool" and json.loads(answer_to_result[-1]["content"]) == found
    last_turn = sent[3]["messages"]
    assert [m["role"] for m in last_turn[-4:]] == ["assistant", "tool", "assistant", "user"]
    assert last_turn[-2]["content"] == "It is lost; a refund is on its way."
    result = CaseResult.objects.get(run=run)
    assert result.trace[3] == {
        "type": "tool_call",
        "name": "lookup_order",
        "arguments": {"order_id": "A-17"},
        "result": found,
    }
    assert 'assistant called lookup_order({"order_id": "A-17"}) -> {"order": "A-17", "status": "lost"}' in (
        judge_prompt(fake_openai)
    )


def test_a_simulated_user_plays_until_done_and_the_judge_sees_the_whole_conversation(
    world, fake_openai, admin_client, django_capture_on_commit_callbacks
):
    simulated_case(world)
    run = run_target(world, world["chat"], django_capture_on_commit_callbacks)

    persona_calls = calls_of(fake_openai, "persona-model")
    assert len(persona_calls) == 3 and len(calls_of(fake_openai, "candidate-model")) == 2
    first, second = prompt_of(persona_calls[0]), prompt_of(persona_calls[1])
    assert PERSONA in first and "scenario (may be empty): Parcel A-17 is lost." in first
    assert "(nothing yet: the conversation starts with your message)" in first
    assert "user: Where is my parcel A-17?\nassistant: reply to: Where is my parcel A-17?" in second
    assert persona_calls[0]["temperature"] == 0 and persona_calls[0]["response_format"] == {
        "type": "json_object"
    }

    result = CaseResult.objects.get(run=run)
    assert result.output == "reply to: Then I want a refund."
    assert [(s["role"], s["content"]) for s in result.trace] == [
        ("user", "Where is my parcel A-17?"),
        ("assistant", "reply to: Where is my parcel A-17?"),
        ("user", "Then I want a refund."),
        ("assistant", "reply to: Then I want a refund."),
        ("user", "Thank you, goodbye."),
    ]
    assert result.trace[-1]["done"] is True
    version = f"{world['persona'].rubric.slug} v1"
    assert [s.get("simulated_by") for s in result.trace] == [version, None, version, None, version]
    page = admin_client.get(reverse("admin:grading_app_caseresult_change", args=[result.pk])).content.decode()
    assert page.count("ended the conversation") == 1
    prompt = judge_prompt(fake_openai)
    assert "What the user wanted (may be empty): Parcel A-17 is lost." in prompt
    assert "assistant: reply to: Then I want a refund.\nuser: Thank you, goodbye.\n" in prompt
    assert Grade.objects.get(case_result=result).passed is True
    # What the simulated user cost is booked on its steps and in the run's evaluation cost, never
    # in the candidate's: two target calls of 100 tokens in and 10 out, at $1 and $2 a million.
    asked = {"calls": 1, "input_tokens": 1000, "output_tokens": 20, "cost_usd": (1000 * 1 + 20 * 2) / 1e6}
    assert [s.get("usage") for s in result.trace] == [asked, None, asked, None, asked]
    assert (result.input_tokens, result.output_tokens) == (200, 20)
    assert result.cost_usd == pytest.approx((200 * 1 + 20 * 2) / 1e6)
    spent = run.summary["evaluation_cost"]
    assert spent["simulated_users"] == {
        "calls": 3,
        "input_tokens": 3000,
        "output_tokens": 60,
        "cost_usd": pytest.approx(3 * asked["cost_usd"]),
    }
    judged = Grade.objects.get(case_result=result)
    assert spent["judges"]["calls"] == 1 and spent["judges"]["cached"] == 0
    assert spent["judges"]["input_tokens"] == judged.input_tokens > 0
    assert spent["judges"]["cost_usd"] == pytest.approx(judged.cost_usd)
    assert spent["cost_usd"] == pytest.approx(3 * asked["cost_usd"] + judged.cost_usd)
    run_page = admin_client.get(reverse("admin:grading_app_run_change", args=[run.pk])).content.decode()
    assert "simulated users 3 turns: 3,000 tokens in, 60 out" in run_page
    assert "judges 1 call:" in run_page


def test_a_simulated_user_that_ends_without_a_word_has_that_call_booked_on_its_last_turn(
    world, fake_openai, django_capture_on_commit_callbacks
):
    def quiet_goodbye(body):
        if body["model"] == "persona-model" and "This is your turn 2 of" in prompt_of(body):
            return json_reply({"message": "", "done": True}, prompt_tokens=500, completion_tokens=5)
        return the_model(body)

    fake_openai.responder(quiet_goodbye)
    simulated_case(world)
    run = run_target(world, world["chat"], django_capture_on_commit_callbacks)

    result = CaseResult.objects.get(run=run)
    assert [(s["role"], s["content"]) for s in result.trace] == [
        ("user", "Where is my parcel A-17?"),
        ("assistant", "reply to: Where is my parcel A-17?"),
    ]
    both = {"calls": 2, "input_tokens": 1500, "output_tokens": 25, "cost_usd": pytest.approx(0.00155)}
    assert result.trace[0]["usage"] == both
    assert run.summary["evaluation_cost"]["simulated_users"] == both


def test_a_persona_without_an_approved_version_is_not_played_and_its_case_errors(
    world, fake_openai, django_capture_on_commit_callbacks
):
    draft = make_rubric_version(
        world["endpoint"], approved=False, prompt_template=SIMULATED_USER_PROMPT_TEMPLATE
    )
    simulated_case(world, "draft-persona", rubric=draft.rubric.slug)
    # No path writes a case naming a rubric that does not exist (the form, the services, imports
    # and apply_config refuse it); one written before that check, or whose rubric's slug changed
    # since, still errors rather than being played.
    orphan = simulated_case(world, "no-such-persona")
    Case.objects.filter(pk=orphan.pk).update(input={"simulated_user": {"rubric": "nobody", "max_turns": 4}})
    run = run_target(world, world["chat"], django_capture_on_commit_callbacks)

    assert fake_openai.requests == []  # neither the target nor any persona was asked anything
    errors = dict(CaseResult.objects.filter(run=run).values_list("case__key", "error"))
    assert "has no approved version" in errors["draft-persona"]
    assert errors["no-such-persona"] == "the simulated user's rubric 'nobody' does not exist"
    assert run.error_cases == 2 and not Grade.objects.filter(case_result__run=run).exists()


def test_a_persona_version_written_as_a_judge_is_refused_before_anything_is_played(
    world, fake_openai, django_capture_on_commit_callbacks
):
    judge_shaped = make_rubric_version(world["endpoint"], model="persona-model")  # the default template
    simulated_case(world, rubric=judge_shaped.rubric.slug)
    run = run_target(world, world["chat"], django_capture_on_commit_callbacks)
    assert "its prompt template has no {transcript}" in CaseResult.objects.get(run=run).error
    assert fake_openai.requests == []


def test_the_target_failing_mid_conversation_is_an_error_keeping_what_was_said(
    world, fake_openai, admin_client, django_capture_on_commit_callbacks
):
    world["endpoint"].max_retries = 0
    world["endpoint"].save()
    add_active_case(world["dataset"], "lost-parcel", {"turns": SCRIPT})
    fake_openai.script(text("Sorry to hear that."), fault("500"))
    run = run_target(world, world["chat"], django_capture_on_commit_callbacks)

    result = CaseResult.objects.get(run=run)
    assert result.error.startswith("turn 2 of 3: InternalServerError")
    assert result.output is None and not result.missing
    assert [s["content"] for s in result.trace] == [SCRIPT[0], "Sorry to hear that.", SCRIPT[1]]
    assert run.error_cases == 1 and not Grade.objects.filter(case_result=result).exists()
    assert calls_of(fake_openai, "judge-model") == []
    page = admin_client.get(reverse("admin:grading_app_caseresult_change", args=[result.pk])).content.decode()
    assert "turn 2 of 3: InternalServerError" in page
    assert all(said in page for said in (SCRIPT[0], "Sorry to hear that.", SCRIPT[1]))


def test_a_simulated_user_answering_garbage_is_retried_then_an_error(
    world, fake_openai, django_capture_on_commit_callbacks
):
    simulated_case(world, opening="Where is my parcel A-17?")

    def garbled_persona(body):
        return text("I would say: refund please") if body["model"] == "persona-model" else the_model(body)

    fake_openai.responder(garbled_persona)
    run = run_target(world, world["chat"], django_capture_on_commit_callbacks)
    result = CaseResult.objects.get(run=run)
    slug = world["persona"].rubric.slug
    assert result.error.startswith(
        f"the simulated user, turn 2: {slug} v1: the simulated user's answer is not JSON"
    )
    assert len(calls_of(fake_openai, "persona-model")) == world["endpoint"].max_retries + 1
    assert [s["content"] for s in result.trace] == [
        "Where is my parcel A-17?",
        "reply to: Where is my parcel A-17?",
    ]


def test_the_simulated_user_keeps_to_its_endpoints_concurrency(world, django_capture_on_commit_callbacks):
    with FakeOpenAI(latency_s=0.05) as persona_server:
        persona_endpoint = make_endpoint(persona_server.base_url, max_concurrency=1)
        persona = make_rubric_version(
            persona_endpoint, model="persona-model", prompt_template=SIMULATED_USER_PROMPT_TEMPLATE
        )
        persona_server.responder(the_model)
        for n in range(4):
            simulated_case(world, f"dana-{n}", rubric=persona.rubric.slug)
        run = run_target(world, world["chat"], django_capture_on_commit_callbacks)
    assert run.error_cases == 0
    assert persona_server.calls == 4 * 3 and persona_server.max_in_flight == 1


def test_each_trial_of_a_conversation_is_played_anew(world, fake_openai, django_capture_on_commit_callbacks):
    add_active_case(world["dataset"], "lost-parcel", {"turns": SCRIPT})
    simulated_case(world)
    run = run_target(world, world["chat"], django_capture_on_commit_callbacks, trials=2)

    assert run.total_cases == 4 and run.error_cases == 0
    assert len(calls_of(fake_openai, "candidate-model")) == 2 * 3 + 2 * 2
    assert len(calls_of(fake_openai, "persona-model")) == 2 * 3  # not cached: each trial asks again
    for result in CaseResult.objects.filter(run=run):
        assert len(result.trace) == (6 if result.case.key == "lost-parcel" else 5)
    # The two trials' transcripts are the same, so the judge is asked once per case (its cache).
    assert len(calls_of(fake_openai, "judge-model")) == 2


def test_a_gate_decides_on_multi_turn_cases_through_the_api(
    world, fake_openai, api_client, django_capture_on_commit_callbacks
):
    add_active_case(world["dataset"], "lost-parcel", {"turns": SCRIPT})
    simulated_case(world)
    grader = make_grader("conversation-judge", kind="llm_judge", rubric=world["judge"].rubric)
    rule = {
        "name": "resolves",
        "metric": "pass_rate",
        "grader": grader,
        "threshold": 1.0,
        "severity": "block",
    }
    gate = make_gate(world["dataset"], rules=[rule], default_target=world["chat"])
    secret = make_token([gate])

    def check(candidate: str) -> dict:
        with django_capture_on_commit_callbacks(execute=True):
            response = api_client.post(
                f"/api/v1/gates/{gate.slug}/checks/",
                {"candidate": candidate},
                format="json",
                HTTP_AUTHORIZATION=f"Bearer {secret}",
            )
        assert response.status_code == 202, response.content
        return api_client.get(response.json()["url"], HTTP_AUTHORIZATION=f"Bearer {secret}").json()

    passed = check("v1")
    assert passed["verdict"] == "pass", passed
    assert passed["rules"][0]["n"] == 2 and passed["rules"][0]["value"] == 1.0

    # The persona's sign-off withdrawn (retired): its case is not played; the rule is undecided.
    retire_rubric_version(world["persona"], actor=world["persona"].rubric.owner, note="persona rewritten")
    undecided = check("v2")
    assert undecided["verdict"] == "inconclusive", undecided
    assert undecided["rules"][0]["outcome"] == "undecided"


def test_the_persona_version_approved_when_the_run_started_plays_all_of_it(
    world, fake_openai, django_capture_on_commit_callbacks
):
    simulated_case(world)
    persona = world["persona"]
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=world["dataset"], candidate="v1", target=world["chat"])
        # Signed off after the run started, before its chunk runs: it must not play this run.
        author = make_user(roles=("Rubric owner",))
        v2 = grading.create_rubric_version(
            persona.rubric,
            actor=author,
            criteria="You are Dana, now furious.",
            endpoint=world["endpoint"],
            model="persona-model",
            prompt_template=SIMULATED_USER_PROMPT_TEMPLATE,
        )
        grading.approve_rubric_version(
            grading.submit_rubric_version(v2, actor=author), actor=persona.rubric.owner
        )
    run.refresh_from_db()
    assert run.persona_versions == {persona.rubric.slug: persona.pk}
    persona_calls = calls_of(fake_openai, "persona-model")
    assert persona_calls and all(PERSONA in prompt_of(body) for body in persona_calls)
    trace = CaseResult.objects.get(run=run).trace
    assert {s["simulated_by"] for s in trace if s.get("simulated_by")} == {f"{persona.rubric.slug} v1"}


def test_a_persona_with_no_approved_version_when_the_run_started_is_not_played_by_a_later_one(
    world, fake_openai, django_capture_on_commit_callbacks
):
    author = make_user(roles=("Rubric owner",))
    draft = make_rubric_version(
        world["endpoint"],
        approved=False,
        owner=author,
        model="persona-model",
        prompt_template=SIMULATED_USER_PROMPT_TEMPLATE,
        criteria=PERSONA,
    )
    simulated_case(world, rubric=draft.rubric.slug)
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=world["dataset"], candidate="v1", target=world["chat"])
        submitted = grading.submit_rubric_version(draft, actor=draft.author)
        grading.approve_rubric_version(submitted, actor=author)
    run.refresh_from_db()
    assert run.persona_versions == {draft.rubric.slug: None}
    assert calls_of(fake_openai, "persona-model") == []
    assert "no approved version" in CaseResult.objects.get(run=run).error


def test_a_run_of_submitted_outputs_pins_no_persona(world, django_capture_on_commit_callbacks):
    simulated_case(world)
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=world["dataset"], candidate="v1", outputs=[])
    assert Run.objects.get(pk=run.pk).persona_versions == {}
