"""inspect_ai datasets, DeepEval goldens, LangSmith and Langfuse exports from tests/datasets/corpus."""

from tests.datasets.corpus_helpers import dropped, errors, expected, graders, messages, read

REFERENCE_HINT = (
    "the source checks it in code (a scorer or metric): pass --reference-as (answer, equals, contains, "
    "contains_cs, contains_any, contains_any_cs) to say which check it is"
)


def test_inspect_jsonl_with_chat_input_and_a_target_list_as_includes():
    plan = read("inspect/arithmetic.jsonl", "inspect", reference_as="contains_any")

    assert errors(plan) == [] and dropped(plan) == []
    assert [(s.key, s.tags) for s in plan.specs] == [("add-1", ["difficulty:easy"]), ("sample-2", [])]
    assert messages(plan)["sample-2"] == [
        {"role": "system", "content": "Answer with a number."},
        {"role": "user", "content": "What is 3 * 3?"},
    ]
    assert expected(plan) == {  # includes(): any target, ignoring case
        "add-1": {"contains_any": {"value": ["4"], "case_sensitive": False}},
        "sample-2": {"contains_any": {"value": ["9", "nine"], "case_sensitive": False}},
    }
    assert graders(plan) == {"contains-any": ("contains_any", {}, None)}


def test_inspect_csv_with_renamed_fields():
    plan = read(
        "inspect/capitals.csv", "inspect", input_field="question", ideal_field="answer", reference_as="answer"
    )

    assert [(s.key, s.line, s.input, s.expected) for s in plan.specs] == [
        (
            "fr",
            2,
            {
                "messages": [{"role": "user", "content": "What is the capital of France?"}],
                "vars": {"region": "europe"},
            },
            {"answer": "Paris"},
        ),
        (
            "jp",
            3,
            {
                "messages": [{"role": "user", "content": "What is the capital of Japan?"}],
                "vars": {"region": "asia"},
            },
            {"answer": "Tokyo"},
        ),
    ]


def test_inspect_without_a_scorer_keeps_the_target_unchecked_and_says_so():
    plan = read("inspect/choices.json", "inspect")

    (spec,) = plan.specs
    assert spec.input["vars"] == {"choices": ["Mars", "Jupiter", "Venus"]}
    assert spec.expected == {"reference": "B"}
    assert dropped(plan) == [
        "line 2: files: it prepares a sandbox, which Evalgate does not run",
        "line 2: setup: it prepares a sandbox, which Evalgate does not run",
        f"line 2: target: {REFERENCE_HINT}",
    ]


def test_deepeval_goldens_carry_context_metadata_and_expected_tools():
    plan = read("deepeval/goldens.json", "deepeval", reference_as="answer")

    first, tools = plan.specs
    assert (first.key, first.tags) == ("golden-1", ["product:web", "comments:from ticket 812"])
    assert first.input == {
        "messages": [{"role": "user", "content": "How do I reset my password?"}],
        "vars": {"context": ["Passwords are reset from the sign-in page."]},
    }
    assert first.expected == {"answer": "Use the 'Forgot password' link on the sign-in page."}
    assert (tools.key, tools.expected) == ("refund-tool", {"tools": ["lookup_order", "issue_refund"]})
    assert dropped(plan) == [
        "line 9: actual_output: it records one past run's output, not what a case expects",
        "line 9: retrieval_context: it records one past run's output, not what a case expects",
        "line 9: expected_tools: tool arguments and outputs are not checked yet (names are)",
    ]


def test_deepeval_conversational_golden_becomes_the_conversation_so_far():
    plan = read("deepeval/conversations.json", "deepeval", reference_as="contains")

    (spec,) = plan.specs
    assert [m["role"] for m in spec.input["messages"]] == ["user", "assistant", "user"]
    assert spec.input["vars"] == {
        "scenario": "A customer whose parcel is lost asks for a replacement.",
        "user_description": "Impatient, on mobile",
    }
    assert spec.expected == {"contains": ["The assistant offers a replacement or a refund."]}
    assert dropped(plan) == []


def test_deepeval_conversational_goldens_with_a_persona_become_simulated_users():
    plan = read(
        "deepeval/simulations.json", "deepeval", reference_as="contains", persona="impatient-customer"
    )

    assert errors(plan) == []
    vip, follow_up = plan.specs
    assert vip.input == {
        "simulated_user": {
            "rubric": "impatient-customer",
            "scenario": "Andy wants to buy a VIP ticket for Saturday's concert.\n"
            "Who you are: Andy is a busy CEO who writes in short sentences.",
        }
    }
    assert vip.expected == {"contains": ["A VIP ticket is booked."]}
    # The turns so far open the conversation; the persona speaks next.
    assert follow_up.input == {
        "messages": [
            {"role": "user", "content": "Where is the refund for order 4411?"},
            {"role": "assistant", "content": "It was issued on Monday."},
        ],
        "simulated_user": {
            "rubric": "impatient-customer",
            "scenario": "A customer comes back about a refund promised last week.",
        },
    }
    assert dropped(plan) == ["line 8: turns[1].tools_called: only a turn's role and content are carried"]


def test_a_golden_ending_with_the_users_turn_opens_its_simulation_with_it():
    plan = read(
        "deepeval/conversations.json", "deepeval", reference_as="contains", persona="impatient-customer"
    )

    (spec,) = plan.specs
    assert [m["content"] for m in spec.input["messages"]] == [
        "My parcel never arrived.",
        "Sorry to hear that. What is the order number?",
    ]
    assert spec.input["simulated_user"]["opening"] == "It's 4411."


def test_a_scenario_alone_needs_a_persona_to_be_played():
    plan = read("deepeval/simulations.json", "deepeval", reference_as="contains")

    assert errors(plan)[0].startswith(
        "line 2: input: 'input' must be text (or give turns, or a scenario with --persona to simulate"
    )
    (follow_up,) = plan.specs  # with turns: the conversation so far, answered once
    assert follow_up.input["vars"] == {"scenario": "A customer comes back about a refund promised last week."}


def test_deepeval_csv_goldens_read_json_cells():
    plan = read("deepeval/goldens.csv", "deepeval", reference_as="contains")

    assert expected(plan) == {
        "golden-1": {"contains": ["Nine to five, Monday to Friday."]},
        "golden-2": {"tools": ["cancel_subscription"]},
    }
    assert plan.specs[0].input["vars"] == {"context": ["Open 9-17 on weekdays"]}


def test_langsmith_jsonl_and_csv_exports():
    plan = read("langsmith/examples.jsonl", "langsmith", reference_as="answer")

    assert [(s.key, s.tags) for s in plan.specs] == [("3f1c", ["source:docs"]), ("9a2b", [])]
    assert plan.specs[1].input == {
        "vars": {"question": "Can I export datasets?", "user": "u-7"},
        "messages": [{"role": "user", "content": "Can I export datasets?"}],
    }
    assert expected(plan)["3f1c"] == {"answer": "A platform to trace and evaluate LLM apps."}
    csv_plan = read("langsmith/examples.csv", "langsmith")
    assert expected(csv_plan) == {"example-1": {"reference": "Yes"}}
    assert dropped(csv_plan) == [f"line 2: outputs: {REFERENCE_HINT}"]


def test_langfuse_items_with_message_or_text_input():
    plan = read("langfuse/items.jsonl", "langfuse", reference_as="equals", input_field="messages")

    assert errors(plan) == []
    assert messages(plan) == {
        "item-1": [{"role": "user", "content": "Translate 'cat' to French"}],
        "item-2": [{"role": "user", "content": "Translate 'dog' to French"}],
    }
    assert expected(plan) == {"item-1": {"equals": "chat"}, "item-2": {"equals": "chien"}}


def test_inspect_chat_fields_that_reach_the_model_beyond_role_and_content_are_listed_as_not_carried():
    plan = read("inspect/tool_chat.jsonl", "inspect", reference_as="contains_any")

    assert errors(plan) == []
    assert messages(plan)["parcel-eta"] == [
        {"role": "system", "content": "You track parcels."},  # `source` is bookkeeping
        {"role": "user", "content": "Where is parcel 9?"},
        {"role": "assistant", "content": ""},
        {"role": "tool", "content": "In transit, Leipzig hub"},
        {"role": "user", "content": [{"type": "text", "text": "And this label?"}]},
    ]
    assert dropped(plan) == [
        "line 1: input[2].tool_calls: only a message's role and content are carried",
        "line 1: input[3].function: only a message's role and content are carried",
        "line 1: input[3].tool_call_id: only a message's role and content are carried",
        "line 1: input[4].content[1]: its image part is not carried (text only)",
    ]
