"""OpenAI Evals registry evals and hosted-API eval definitions from tests/datasets/corpus."""

from pathlib import Path

import pytest

from datasets_app.importers import read_cases
from grading_app.graders import get_kind
from grading_app.graders.base import GradingInput
from tests.datasets.corpus_helpers import CORPUS, dropped, errors, expected, graders, messages, read

REGISTRY = "openai_evals/registry/evals/support.yaml"


def read_text(text: str, **options):
    return read_cases(text.encode(), "openai-evals", file_name="samples.jsonl", **options)


def test_match_is_a_case_sensitive_starts_with_any_ideal():
    plan = read(REGISTRY, "openai-evals", eval_name="support-match")

    assert errors(plan) == [] and dropped(plan) == []
    assert expected(plan) == {"line-1": {"starts_with": ["B"]}, "q2": {"starts_with": ["B", "Pro"]}}  # any
    assert messages(plan)["line-1"] == [
        {"role": "system", "content": "Answer with the letter first."},
        {"role": "user", "content": "When was the treaty signed? A. 1797 B. 1798"},
    ]
    assert graders(plan) == {"starts-with": ("starts_with", {}, None)}  # case-sensitive by default


def test_includes_with_ignore_case_reads_legacy_prompt_completion_lines():
    plan = read(REGISTRY, "openai-evals", eval_name="support-includes.dev.v0")

    assert errors(plan) == [] and dropped(plan) == []
    assert messages(plan)["line-1"] == [{"role": "user", "content": "Name our refund window."}]
    # ignore_case: true, for these cases, lower-casing both texts as evals does (str.lower).
    lower = {"case_sensitive": False, "case_mapping": "lowercase"}
    assert expected(plan) == {
        "line-1": {"contains_any": {"value": ["30 days"], **lower}},
        "line-2": {"contains_any": {"value": ["Sunday", "public holidays"], **lower}},
    }
    assert graders(plan) == {"contains-any": ("contains_any", {}, None)}


def test_json_match_reads_a_json_array_and_keeps_each_ideal_as_the_text_evals_parses():
    plan = read(REGISTRY, "openai-evals", eval_name="support-json")

    assert [s.line for s in plan.specs] == [2, 3, 4]
    assert expected(plan) == {
        "line-2": {"json_match": ['{"order": 7, "items": ["shirt"]}']},
        "line-3": {"json_match": ['{"refund": true}', '{"refund": true, "days": 30}']},  # any of them
        # JsonMatch never matches a null; the json_match grader decides so too (tests/grading).
        "line-4": {"json_match": ['{"coupon": null}']},
    }
    assert dropped(plan) == [] and errors(plan) == []
    assert graders(plan) == {"json-match": ("json_match", {}, None)}


def test_fuzzy_match_becomes_the_fuzzy_match_grader_with_each_samples_ideals():
    plan = read(REGISTRY, "openai-evals", eval_name="support-fuzzy")

    assert errors(plan) == [] and dropped(plan) == []  # max_tokens: the target's business
    assert expected(plan) == {
        "treaty": {"fuzzy_match": "1798"},
        "capital": {"fuzzy_match": ["Paris", "Paris, France"]},  # any of them
        "plan": {"fuzzy_match": "The Pro plan, billed yearly"},
        "refund": {"fuzzy_match": "30 days"},
    }
    assert messages(plan)["treaty"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "When was the treaty signed?"},
    ]
    assert graders(plan) == {"fuzzy-match": ("fuzzy_match", {}, None)}


def test_fuzzy_match_grades_the_corpus_as_openai_evals_reports_it():
    """Accuracy and f1_score as FuzzyMatch.run() computes them for these four answers: a correct
    answer inside a sentence, the ideal's own words, a shorter answer the ideal contains (which
    Includes would fail), and a wrong one that shares a word."""
    plan = read(REGISTRY, "openai-evals", eval_name="support-fuzzy")
    outputs = {
        "treaty": "It was signed in 1798.",
        "capital": "paris",
        "plan": "Pro plan",
        "refund": "Fourteen days.",
    }
    kind = get_kind("fuzzy_match")
    outcomes = {
        s.key: kind.evaluate(GradingInput(s.input, s.expected, outputs[s.key]), kind.validate_config({}))
        for s in plan.specs
    }

    assert {key: o.passed for key, o in outcomes.items()} == {
        "treaty": True,
        "capital": True,
        "plan": True,
        "refund": False,
    }
    # f1: 1 of 5 words (2/6), the best of two ideals (1), 2 of 4 words (2/3), 1 of 2 each (1/2).
    assert [o.score for o in outcomes.values()] == pytest.approx([1 / 3, 1.0, 2 / 3, 0.5])
    assert sum(o.passed for o in outcomes.values()) / 4 == 0.75  # accuracy
    assert sum(o.score for o in outcomes.values()) / 4 == pytest.approx(0.625)  # f1_score


def test_fuzzy_match_samples_read_alone_and_refuse_an_ideal_the_eval_cannot_compare():
    samples = "openai_evals/registry/data/support/legacy.jsonl"
    plan = read(samples, "openai-evals", eval_class="FuzzyMatch")

    assert expected(plan) == {
        "line-1": {"fuzzy_match": "30 days"},
        "line-2": {"fuzzy_match": ["Sunday", "public holidays"]},
    }
    bad = read_text('{"input": "2+2?", "ideal": 4}\n{"input": "x", "ideal": []}\n', eval_class="FuzzyMatch")
    assert errors(bad) == [
        "line 1: ideal: ideal must be a string or a list of strings",
        "line 2: ideal: ideal must be a string or a list of strings",
    ]


def test_model_based_classify_becomes_a_judge_on_a_draft_rubric_from_its_modelgraded_spec():
    plan = read(REGISTRY, "openai-evals", eval_name="support-fact")

    assert errors(plan) == [] and dropped(plan) == []
    assert expected(plan)["q2"] == {"ideal": ["B", "Pro"], "openai_modelgraded_policy_fact": True}
    (rubric,) = plan.rubrics
    assert (rubric.slug, rubric.pass_threshold) == ("openai-evals-modelgraded-policy-fact", 1.0)
    assert "[Expert]: {ideal}" in rubric.criteria and '"D": 0.0' in rubric.criteria
    assert graders(plan) == {
        "openai-evals-modelgraded-policy-fact": (
            "llm_judge",
            {"expected_field": "openai_modelgraded_policy_fact"},
            "openai-evals-modelgraded-policy-fact",
        )
    }


def test_a_registry_with_several_evals_needs_one_named():
    plan = read(REGISTRY, "openai-evals")

    assert errors(plan) == [
        "line 1: eval: the file defines 5 evals (support-match.dev.v0, support-includes.dev.v0, "
        "support-json.dev.v0, support-fuzzy.dev.v0, support-fact.dev.v0); name one with --eval"
    ]


def test_samples_alone_need_their_class_and_field_names_apply_to_every_shape():
    samples = "openai_evals/registry/data/support/legacy.jsonl"

    assert errors(read(samples, "openai-evals"))[0].startswith(
        "line 1: eval_class: a samples file does not say"
    )
    plan = read(samples, "openai-evals", eval_class="Match", input_field="prompt", ideal_field="completion")
    assert expected(plan)["line-1"] == {"starts_with": ["30 days"]}


def test_hosted_eval_definition_maps_testing_criteria_onto_graders_and_draft_rubrics():
    items = CORPUS / "openai_api" / "ticket_items.jsonl"
    plan = read("openai_api/ticket_eval.json", "openai-evals-api", items=items, input_field="ticket")

    assert errors(plan) == []
    assert expected(plan)["item-1"] == {
        "string_check": [
            {"value": "Hardware", "operation": "eq"},
            {"value": "Devices", "operation": "ilike"},
            {"value": "Other", "operation": "ne"},
        ],
        "text_similarity": {"value": "Hardware", "metric": "fuzzy_match", "threshold": 0.8},
        "similar": {"value": "Hardware", "threshold": 0.85},  # cosine: embeddings compared
        "openai_tone": True,
        "openai_usefulness": True,
    }
    assert expected(plan)["t-2"]["string_check"][0] == {"value": "Software", "operation": "eq"}
    assert graders(plan)["string-check"] == ("string_check", {}, None)
    assert graders(plan)["text-similarity"] == ("text_similarity", {}, None)
    assert graders(plan)["similar"] == ("embedding_similarity", {}, None)  # on --embedding-endpoint
    assert messages(plan)["t-2"] == [{"role": "user", "content": "Excel keeps crashing"}]
    assert dropped(plan) == [
        "line 32: testing_criteria length: a python grader is code, and no foreign code is run",
    ]
    assert [(r.slug, r.pass_threshold) for r in plan.rubrics] == [
        ("openai-evals-tone", 1.0),
        ("openai-evals-usefulness", 0.75),  # 5.5 on a 1..7 range
    ]
    assert "passing_labels" not in plan.rubrics[0].criteria and "['polite']" in plan.rubrics[0].criteria


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"input_field": "ticket"}, "line 1: items: give the eval's items file"),
        ({"items": Path("/nonexistent.jsonl")}, "line 1: input_field: the definition has no input_messages"),
    ],
)
def test_hosted_eval_without_items_or_input_says_what_to_give(options, error):
    plan = read("openai_api/ticket_eval.json", "openai-evals-api", **options)

    assert errors(plan)[0].startswith(error)
