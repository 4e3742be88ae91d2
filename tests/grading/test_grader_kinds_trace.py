"""tool_calls and citations: what the trace says the system did (no database)."""

import re

import pytest

from grading_app.graders import get_kind
from grading_app.graders.trace_kinds import cited_ids
from tests.grading.grading_helpers import config_error, grade


def test_trace_kinds_are_registered_with_their_dimensions():
    assert get_kind("tool_calls").dimension == "trace"
    assert get_kind("citations").dimension == "citation"


def calls(*names):
    return [{"type": "tool_call", "name": name, "arguments": {}} for name in names]


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
