"""citation_support and retrieval: was the right evidence retrieved, and does the answer say
what its cited documents say? (no database)"""

import re

import pytest

from grading_app.graders.evidence import citing_sentences
from grading_app.graders.facts import Date, extract, unsupported
from tests.grading.grading_helpers import config_error, grade

POLICY = "Refund policy: a refund is possible within 30 days of purchase, up to $500."
HOURS = "Support is open from March 3, 2025, weekdays 9 to 17."


def retrieval(**documents):
    return {
        "type": "retrieval",
        "documents": [{"id": k.replace("_", "-"), "text": v} for k, v in documents.items()],
    }


# facts


def test_facts_read_figures_amounts_and_dates_in_their_usual_spellings():
    facts = extract(
        "Since 3 March 2025 refunds of $1,200.50 (or 1.2 million yen, 5k points) take 14 days; -2%."
    )
    assert [value for value, _ in facts.numbers] == [1200.5, 1.2e6, 5000.0, 14.0, -2.0]
    assert [date for date, _ in facts.dates] == [Date(2025, 3, 3)]


def test_dates_agree_across_spellings_and_on_the_parts_both_give():
    assert not unsupported("on 2025-03-03", ["from March 3rd, 2025"])
    assert not unsupported("on March 3", ["from 3 March 2025"])
    assert unsupported("on March 4, 2025", ["from 3 March 2025"]) == ["March 4, 2025"]
    assert unsupported("in April 2025", ["from 3 March 2025"]) == ["April 2025"]


def test_a_cited_year_or_day_may_come_from_a_date_in_the_source():
    assert not unsupported("since 2025", [HOURS])


def test_numbers_words_are_not_figures():
    assert extract("two options, one plan").numbers == []


# citing sentences


def test_a_citation_after_the_full_stop_belongs_to_the_sentence_before():
    pattern = re.compile(r"\[([A-Za-z0-9_.:-]+)\]")
    text = "Refunds take 90 days. [doc-1] Support opens at 9 [doc-2]. No citation here, 1.5 days."
    assert citing_sentences(text, pattern) == [
        ("Refunds take 90 days.", ["doc-1"]),
        ("Support opens at 9 .", ["doc-2"]),
    ]


# citation_support


def test_ninety_days_fails_when_the_cited_document_says_thirty():
    outcome = grade(
        "citation_support",
        "You can get a refund within 90 days [doc-1].",
        trace=[retrieval(doc_1=POLICY)],
        citations=["doc-1"],
    )
    assert outcome.passed is False
    assert outcome.score == 0.0
    assert outcome.rationale == "sentence 1: '90' not in doc-1"


def test_figures_the_cited_document_states_pass():
    outcome = grade(
        "citation_support",
        "You can get a refund within 30 days [doc-1]. Refunds go up to $500 [doc-1]. "
        "Support opens March 3 [doc-2].",
        trace=[retrieval(doc_1=POLICY, doc_2=HOURS)],
        citations=["doc-1"],
    )
    assert outcome.passed is True
    assert "3 citing sentence(s)" in outcome.rationale


def test_a_figure_from_another_retrieved_document_than_the_cited_one_fails():
    outcome = grade(
        "citation_support",
        "Support opens at 9 [doc-1].",
        trace=[retrieval(doc_1=POLICY, doc_2=HOURS)],
        citations=[],
    )
    assert outcome.passed is False
    assert "'9' not in doc-1" in outcome.rationale


def test_a_sentence_citing_two_documents_may_draw_on_either():
    outcome = grade(
        "citation_support",
        "Refunds within 30 days, support from 9 [doc-1, doc-2].",
        {"pattern": r"\[([^\]]+)\]"},
        trace=[retrieval(doc_1=POLICY, doc_2=HOURS)],
        citations=[],
    )
    assert outcome.passed is True


def test_citing_a_document_the_trace_never_retrieved_fails():
    outcome = grade(
        "citation_support", "Within 30 days [doc-9].", trace=[retrieval(doc_1=POLICY)], citations=["doc-9"]
    )
    assert outcome.passed is False
    assert "cites doc-9, never retrieved" in outcome.rationale
    # No retrieval step at all: nothing cited can have been retrieved.
    assert grade("citation_support", "Within 30 days [doc-1].", citations=["doc-1"]).passed is False


def test_the_score_is_the_share_of_supported_citing_sentences():
    outcome = grade(
        "citation_support",
        "Within 30 days [doc-1]. Up to $900 [doc-1].",
        trace=[retrieval(doc_1=POLICY)],
        citations=["doc-1"],
    )
    assert outcome.passed is False
    assert outcome.score == 0.5


def test_citation_support_needs_the_citations_key_and_passes_an_answer_citing_nothing():
    assert grade("citation_support", "Within 90 days [doc-1].", trace=[retrieval(doc_1=POLICY)]) is None
    outcome = grade("citation_support", "Within 90 days.", trace=[retrieval(doc_1=POLICY)], citations=[])
    assert outcome.passed is True
    assert "cites nothing" in outcome.rationale


def test_citation_support_refuses_a_bad_pattern_and_malformed_citations():
    assert "config.pattern is invalid" in config_error("citation_support", {"pattern": "(["})
    with pytest.raises(ValueError, match=r"expected\.citations must be a string or a list"):
        grade("citation_support", "x", citations=[1])


# retrieval


def test_retrieval_passes_when_every_piece_of_evidence_was_retrieved():
    outcome = grade("retrieval", "ok", trace=[retrieval(doc_1=POLICY, doc_7="x")], evidence=["doc-1"])
    assert outcome.passed is True
    assert outcome.score == 1.0
    assert outcome.rationale == "recall 1.00, precision 0.50"


def test_retrieval_fails_and_names_evidence_never_retrieved():
    outcome = grade("retrieval", "ok", trace=[retrieval(doc_2="x")], evidence=["doc-1", "doc-2"])
    assert outcome.passed is False
    assert outcome.score == 0.5
    assert "not retrieved: doc-1" in outcome.rationale
    assert grade("retrieval", "ok", trace=[], evidence="doc-1").passed is False


def test_retrieval_thresholds_from_the_case_or_the_grader():
    trace = [retrieval(doc_1="a", doc_2="b", doc_3="c", doc_4="d")]
    relaxed = {"value": ["doc-1", "doc-9"], "min_recall": 0.5}
    assert grade("retrieval", "ok", trace=trace, evidence=relaxed).passed is True
    assert grade("retrieval", "ok", {"min_precision": 0.5}, trace=trace, evidence=["doc-1"]).passed is False
    assert grade("retrieval", "ok", {"min_precision": 0.25}, trace=trace, evidence=["doc-1"]).passed is True


def test_retrieval_refuses_empty_evidence_and_thresholds_out_of_range():
    with pytest.raises(ValueError, match="at least one document id"):
        grade("retrieval", "ok", evidence=[])
    assert "min_recall must be between 0 and 1" in config_error("retrieval", {"min_recall": 1.5})
    with pytest.raises(ValueError, match="min_precision must be between 0 and 1"):
        grade("retrieval", "ok", evidence={"value": "doc-1", "min_precision": -1})
