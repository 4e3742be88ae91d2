"""tool_calls, tool_schema and citations: what the trace says the system did (no database)."""

import re

import pytest

from grading_app.graders import get_kind
from grading_app.graders.evidence import cited_ids
from tests.grading.grading_helpers import config_error, grade


def test_trace_kinds_are_registered_with_their_dimensions():
    assert get_kind("tool_calls").dimension == "trace"
    assert get_kind("citations").dimension == "citation"


def calls(*names):
    # Each call with its own arguments: identical calls are a check of their own (max_repeats).
    return [{"type": "tool_call", "name": name, "arguments": {"n": i}} for i, name in enumerate(names)]


def retrieval(*ids):
    return {"type": "retrieval", "documents": [{"id": doc, "text": "..."} for doc in ids]}


def openai_transcript(*names):
    """An OpenAI chat transcript: one assistant turn calling ``names``, then their results."""
    tool_calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": '{"q": 1}'}}
        for i, name in enumerate(names)
    ]
    results = [{"role": "tool", "tool_call_id": f"call_{i}", "content": "ok"} for i in range(len(names))]
    return [
        {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": None, "tool_calls": tool_calls},
        *results,
        {"role": "assistant", "content": "It ships today."},
    ]


# tool_calls


def test_tool_calls_passes_when_every_expected_tool_was_called():
    outcome = grade(
        "tool_calls", "ok", trace=calls("lookup_order", "search"), tools=["search", "lookup_order"]
    )
    assert outcome.passed is True
    assert outcome.score == 1.0
    assert "lookup_order -> search" in outcome.rationale


def test_tool_calls_fails_and_names_a_tool_that_was_not_called():
    outcome = grade("tool_calls", "ok", trace=calls("search"), tools=["search", "lookup_order"])
    assert outcome.passed is False
    assert outcome.score == 0.0
    assert outcome.rationale.startswith("not called: lookup_order")


def test_tool_calls_needs_a_tool_listed_twice_to_be_called_twice():
    outcome = grade("tool_calls", "ok", trace=calls("search"), tools=["search", "search"])
    assert outcome.passed is False
    assert "not called: search" in outcome.rationale


def test_tool_calls_ordered_accepts_the_tools_as_a_subsequence_with_gaps():
    trace = calls("search", "lookup_order", "search", "issue_refund")
    outcome = grade(
        "tool_calls", "ok", trace=trace, tools=["lookup_order", "issue_refund"], tools_ordered=True
    )
    assert outcome.passed is True


def test_tool_calls_ordered_fails_tools_called_out_of_order():
    trace = calls("issue_refund", "lookup_order")
    outcome = grade(
        "tool_calls", "ok", trace=trace, tools=["lookup_order", "issue_refund"], tools_ordered=True
    )
    assert outcome.passed is False
    assert outcome.score == 0.5  # both called, order wrong
    assert "out of order: expected lookup_order -> issue_refund" in outcome.rationale


def test_tool_calls_unordered_accepts_any_order():
    trace = calls("issue_refund", "lookup_order")
    outcome = grade(
        "tool_calls", "ok", trace=trace, tools=["lookup_order", "issue_refund"], tools_ordered=False
    )
    assert outcome.passed is True


def test_tool_calls_fails_a_forbidden_tool():
    outcome = grade(
        "tool_calls", "ok", trace=calls("search", "delete_account"), forbidden_tools=["delete_account"]
    )
    assert outcome.passed is False
    assert outcome.score == 0.0
    assert "forbidden tool(s) called: delete_account" in outcome.rationale


def test_tool_calls_passes_when_no_forbidden_tool_is_called():
    assert grade("tool_calls", "ok", trace=calls("search"), forbidden_tools="delete_account").passed is True


def test_tool_calls_fails_tool_churn_over_the_limit():
    outcome = grade("tool_calls", "ok", trace=calls("search", "search", "search"), max_tool_calls=2)
    assert outcome.passed is False
    assert "3 tool calls, limit 2" in outcome.rationale


def test_tool_calls_limit_is_inclusive_and_zero_means_none():
    assert grade("tool_calls", "ok", trace=calls("search", "search"), max_tool_calls=2).passed is True
    assert grade("tool_calls", "ok", trace=[], max_tool_calls=0).passed is True
    assert grade("tool_calls", "ok", trace=calls("search"), max_tool_calls=0).passed is False


def test_tool_calls_scores_the_share_of_checks_passed_and_lists_every_problem():
    trace = calls("delete_account", "search", "search")
    outcome = grade(
        "tool_calls",
        "ok",
        trace=trace,
        tools=["lookup_order"],
        forbidden_tools=["delete_account"],
        max_tool_calls=5,
    )
    assert outcome.score == pytest.approx(1 / 3)
    assert "not called: lookup_order" in outcome.rationale
    assert "forbidden tool(s) called: delete_account" in outcome.rationale


def test_tool_calls_reads_an_openai_transcript():
    trace = openai_transcript("lookup_order", "issue_refund")
    outcome = grade(
        "tool_calls", "ok", trace=trace, tools=["lookup_order", "issue_refund"], tools_ordered=True
    )
    assert outcome.passed is True
    reversed_order = grade(
        "tool_calls", "ok", trace=trace, tools=["issue_refund", "lookup_order"], tools_ordered=True
    )
    assert reversed_order.passed is False


def test_tool_calls_does_not_apply_without_tool_expectations():
    assert grade("tool_calls", "ok", trace=calls("search"), answer="ok") is None
    assert grade("tool_calls", "ok", trace=calls("search"), tools=[]) is None


def test_tool_calls_ordered_without_tools_raises():
    with pytest.raises(ValueError, match=r"expected\.tools_ordered"):
        grade("tool_calls", "ok", trace=calls("search"), tools_ordered=True, max_tool_calls=3)


@pytest.mark.parametrize("limit", [-1, "3", True, 2.5])
def test_tool_calls_limit_that_is_not_a_non_negative_integer_raises(limit):
    with pytest.raises(ValueError, match=r"expected\.max_tool_calls"):
        grade("tool_calls", "ok", trace=[], max_tool_calls=limit)


def test_tool_calls_tools_of_the_wrong_shape_raise():
    with pytest.raises(ValueError, match=r"expected\.tools"):
        grade("tool_calls", "ok", trace=[], tools=[{"name": "search"}])
    with pytest.raises(ValueError, match=r"expected\.tools_ordered"):
        grade("tool_calls", "ok", trace=[], tools=["search"], tools_ordered="yes")


def test_tool_calls_takes_no_config_and_names_an_unknown_key():
    assert "max_tool_calls" in config_error("tool_calls", {"max_tool_calls": 3})


# citations


def test_cited_ids_reads_bracketed_ids_once_in_order():
    pattern = get_kind("citations").validate_config({})["pattern"]
    assert cited_ids("See [doc-7] and [kb:12], again [doc-7].", re.compile(pattern)) == ["doc-7", "kb:12"]


def test_citations_passes_when_every_required_id_is_cited_and_retrieved():
    outcome = grade(
        "citations", "Refunds take 5 days [doc-7].", trace=[retrieval("doc-7", "doc-9")], citations=["doc-7"]
    )
    assert outcome.passed is True
    assert outcome.score == 1.0
    assert outcome.rationale == "cites doc-7, all retrieved"


def test_citations_fails_and_scores_the_share_of_required_ids_cited():
    trace = [retrieval("doc-7", "doc-9")]
    outcome = grade("citations", "Refunds take 5 days [doc-7].", trace=trace, citations=["doc-7", "doc-9"])
    assert outcome.passed is False
    assert outcome.score == 0.5
    assert outcome.rationale == "missing citation(s): doc-9"


def test_citations_fails_a_fabricated_citation_with_score_zero():
    trace = [retrieval("doc-7")]
    outcome = grade("citations", "Yes [doc-7][doc-404].", trace=trace, citations=["doc-7"])
    assert outcome.passed is False
    assert outcome.score == 0.0
    assert "cited but never retrieved: doc-404" in outcome.rationale


def test_citations_counts_documents_of_every_retrieval_step():
    trace = [retrieval("doc-1"), *calls("search"), retrieval("doc-2")]
    assert grade("citations", "[doc-1] [doc-2]", trace=trace, citations=["doc-1", "doc-2"]).passed is True


def test_citations_does_not_check_grounding_without_retrieval_steps():
    outcome = grade("citations", "[doc-7] [doc-404]", trace=calls("search"), citations=["doc-7"])
    assert outcome.passed is True
    assert outcome.rationale == "cites doc-7, doc-404"


def test_citations_retrieval_that_found_nothing_makes_every_citation_fabricated():
    trace = [{"type": "retrieval", "documents": []}]
    assert grade("citations", "[doc-7]", trace=trace, citations=["doc-7"]).score == 0.0


def test_citations_with_an_empty_list_still_fails_fabrication():
    trace = [retrieval("doc-7")]
    assert grade("citations", "No sources needed.", trace=trace, citations=[]).passed is True
    assert grade("citations", "Per [doc-8].", trace=trace, citations=[]).passed is False


def test_citations_reads_an_openai_transcript_as_having_no_retrieval():
    outcome = grade(
        "citations", "It ships today [doc-7].", trace=openai_transcript("search"), citations=["doc-7"]
    )
    assert outcome.passed is True


def test_citations_uses_a_configured_pattern_and_splits_listed_ids():
    config = {"pattern": r"\(sources?: ([^)]+)\)"}
    output = "Refunds take 5 days (sources: doc-7, doc-9)."
    assert grade("citations", output, config, citations=["doc-7", "doc-9"]).passed is True
    assert grade("citations", output, citations=["doc-7"]).passed is False  # default wants [doc-7]


def test_citations_does_not_apply_without_required_citations():
    assert grade("citations", "[doc-7]", trace=[retrieval("doc-1")], answer="x") is None


def test_citations_required_ids_of_the_wrong_shape_raise():
    with pytest.raises(ValueError, match=r"expected\.citations"):
        grade("citations", "[7]", citations=[7])


def test_citations_invalid_pattern_is_a_config_error_naming_it():
    assert "config.pattern" in config_error("citations", {"pattern": "[unclosed"})


def test_citations_pattern_must_be_a_string():
    assert "pattern" in config_error("citations", {"pattern": ["doc"]})


# tool_calls: repeated identical calls (flagged by default), arguments, failed steps


def same_calls(name, arguments, times):
    return [{"type": "tool_call", "name": name, "arguments": dict(arguments)} for _ in range(times)]


def test_four_identical_calls_fail_by_default():
    trace = same_calls("search", {"q": "refund policy"}, 4)
    outcome = grade("tool_calls", "ok", trace=trace, tools=["search"])
    assert outcome.passed is False
    assert outcome.score == 0.5
    assert (
        'repeated identical call(s), at most 1 each: search({"q": "refund policy"}) x4' in outcome.rationale
    )


def test_the_same_tool_with_other_arguments_is_not_a_repeat():
    trace = [*same_calls("search", {"q": "refunds"}, 1), *same_calls("search", {"q": "returns"}, 1)]
    assert grade("tool_calls", "ok", trace=trace, tools=["search"]).passed is True


def test_max_repeats_from_the_case_or_the_grader_allows_some_or_turns_the_check_off():
    trace = same_calls("poll_status", {"id": 7}, 3)
    assert grade("tool_calls", "ok", trace=trace, tools=["poll_status"], max_repeats=3).passed is True
    assert grade("tool_calls", "ok", trace=trace, tools=["poll_status"], max_repeats=2).passed is False
    assert grade("tool_calls", "ok", {"max_repeats": 0}, trace=trace, tools=["poll_status"]).passed is True


def test_max_repeats_alone_makes_the_kind_apply():
    assert grade("tool_calls", "ok", trace=same_calls("a", {}, 2), max_repeats=1).passed is False
    assert grade("tool_calls", "ok", trace=same_calls("a", {}, 2)) is None


def test_max_repeats_must_be_a_whole_number():
    with pytest.raises(ValueError, match="max_repeats must be an integer >= 0"):
        grade("tool_calls", "ok", trace=[], max_repeats=1.5)
    assert "config.max_repeats must be >= 0" in config_error("tool_calls", {"max_repeats": -1})


REFUND = {
    "type": "tool_call",
    "name": "issue_refund",
    "arguments": {"order_id": "A-17", "amount": 20, "note": "late"},
}


@pytest.mark.parametrize(
    ("check", "passed"),
    [
        ({"exact": {"order_id": "A-17", "amount": 20, "note": "late"}}, True),
        ({"exact": {"order_id": "A-17", "amount": 20}}, False),
        ({"subset": {"order_id": "A-17", "amount": 20.0}}, True),
        ({"subset": {"order_id": "A-18"}}, False),
        ({"regex": {"order_id": "^A-\\d+$", "amount": "^20$"}}, True),
        ({"regex": {"order_id": "^B-"}}, False),
        ({"regex": {"reason": "."}}, False),
        (
            {
                "schema": {
                    "type": "object",
                    "required": ["order_id"],
                    "properties": {"amount": {"maximum": 50}},
                }
            },
            True,
        ),
        ({"schema": {"type": "object", "properties": {"amount": {"maximum": 10}}}}, False),
    ],
)
def test_tool_arguments_exact_subset_regex_and_schema(check, passed):
    outcome = grade("tool_calls", "ok", trace=[REFUND], tool_arguments={"issue_refund": check})
    assert outcome.passed is passed
    if not passed:
        assert "issue_refund arguments fail the" in outcome.rationale


def test_tool_arguments_every_call_must_match_unless_any_is_enough():
    wrong = {**REFUND, "arguments": {"order_id": "A-99", "amount": 20}}
    check = {"subset": {"order_id": "A-17"}}
    assert (
        grade("tool_calls", "ok", trace=[REFUND, wrong], tool_arguments={"issue_refund": check}).passed
        is False
    )
    anyone = {**check, "calls": "any"}
    assert (
        grade("tool_calls", "ok", trace=[REFUND, wrong], tool_arguments={"issue_refund": anyone}).passed
        is True
    )


def test_tool_arguments_of_a_tool_never_called_fail():
    outcome = grade("tool_calls", "ok", trace=[], tool_arguments={"issue_refund": {"subset": {}}})
    assert outcome.passed is False
    assert "issue_refund never called" in outcome.rationale


def test_tool_arguments_several_checks_for_one_tool():
    checks = [{"subset": {"order_id": "A-17"}}, {"regex": {"note": "^late$"}}]
    assert grade("tool_calls", "ok", trace=[REFUND], tool_arguments={"issue_refund": checks}).passed is True


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (["x"], "must be an object of tool name"),
        ({"t": "x"}, r"expected\.tool_arguments\.t must be an object"),
        ({"t": {"subset": {}, "exact": {}}}, "needs exactly one of"),
        ({"t": {"like": {}}}, "needs exactly one of"),
        ({"t": {"regex": {"a": "("}}}, r"regex\.a is not a valid pattern"),
        ({"t": {"schema": {"type": 3}}}, "not a valid JSON Schema"),
        ({"t": {"subset": {}, "calls": "some"}}, "calls must be all or any"),
        ({"t": [{"exact": []}]}, r"t\[0\]\.exact must be an object"),
    ],
)
def test_malformed_tool_arguments_are_a_broken_case(spec, message):
    with pytest.raises(ValueError, match=message):
        grade("tool_calls", "ok", trace=[REFUND], tool_arguments=spec)


def test_failed_tool_steps_are_counted_and_checked_when_a_limit_is_set():
    trace = [
        {"type": "tool_call", "name": "search", "arguments": {"q": 1}, "error": "timeout"},
        {"type": "tool_call", "name": "search", "arguments": {"q": 2}, "is_error": True},
        {"type": "tool_call", "name": "lookup", "arguments": {}, "status": "error"},
        {"type": "tool_call", "name": "lookup", "arguments": {"q": 3}, "result": "ok", "status": "ok"},
    ]
    outcome = grade("tool_calls", "ok", trace=trace, tools=["search"])
    assert outcome.passed is True  # not checked without a limit, but said
    assert "3 failed" in outcome.rationale
    outcome = grade("tool_calls", "ok", trace=trace, tools=["search"], max_tool_errors=1)
    assert outcome.passed is False
    assert (
        "3 tool step(s) failed, at most 1: search (step 0), search (step 1), lookup (step 2)"
        in outcome.rationale
    )
    assert grade("tool_calls", "ok", {"max_tool_errors": 3}, trace=trace, tools=["search"]).passed is True


# tool_schema

WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
                "required": ["city"],
            },
        },
    },
    {"name": "get_time", "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}},
]


def weather_call(arguments, name="get_weather"):
    return {"type": "tool_call", "name": name, "arguments": arguments}


def test_tool_schema_passes_calls_valid_against_their_definitions():
    trace = [weather_call({"city": "Oslo", "unit": "c"}), weather_call({"tz": "UTC"}, "get_time")]
    outcome = grade("tool_schema", "ok", trace=trace, tool_definitions=WEATHER_TOOLS)
    assert outcome.passed is True
    assert "2 call(s) valid" in outcome.rationale


def test_tool_schema_fails_bad_arguments_unknown_tools_and_unparsable_arguments():
    trace = [
        weather_call({"unit": "k"}),
        weather_call({}, "get_stock"),
        weather_call("{city: Oslo", "get_weather"),
        weather_call({"city": "Rome"}),
    ]
    outcome = grade("tool_schema", "ok", trace=trace, tool_definitions=WEATHER_TOOLS)
    assert outcome.passed is False
    assert outcome.score == 0.25
    assert "call 0 (get_weather)" in outcome.rationale
    assert "call 1: 'get_stock' is not a defined tool" in outcome.rationale
    assert "call 2 (get_weather): arguments are not JSON" in outcome.rationale


def test_tool_schema_reads_a_function_call_written_as_the_output():
    legacy = {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert grade("tool_schema", legacy, tool_definitions=WEATHER_TOOLS).passed is True
    tools_call = '[{"type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]'
    outcome = grade("tool_schema", tools_call, tool_definitions=WEATHER_TOOLS)
    assert outcome.passed is False
    assert "'city' is a required property" in outcome.rationale


def test_tool_schema_requires_a_call_unless_told_otherwise():
    outcome = grade("tool_schema", "It is sunny.", tool_definitions=WEATHER_TOOLS)
    assert outcome.passed is False
    assert "one is required" in outcome.rationale
    optional = {"value": WEATHER_TOOLS, "require_call": False}
    assert grade("tool_schema", "It is sunny.", tool_definitions=optional).passed is True
    assert grade(
        "tool_schema", "It is sunny.", {"require_call": False}, tool_definitions=WEATHER_TOOLS
    ).passed


@pytest.mark.parametrize(
    ("definitions", "message"),
    [
        ([], "non-empty list"),
        ([{"type": "function", "function": {"parameters": {}}}], r"\[0\] needs a name"),
        ([{"name": "t", "parameters": {"type": "nope"}}], "not a valid JSON Schema"),
        ({"tools": []}, "is a list, or"),
    ],
)
def test_tool_schema_refuses_malformed_definitions(definitions, message):
    with pytest.raises(ValueError, match=message):
        grade("tool_schema", "ok", trace=[weather_call({"city": "x"})], tool_definitions=definitions)
