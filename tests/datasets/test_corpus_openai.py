"""OpenAI Evals registry evals and hosted-API eval definitions from tests/datasets/corpus."""

from pathlib import Path

import pytest

from tests.datasets.corpus_helpers import CORPUS, dropped, errors, expected, graders, messages, read

REGISTRY = "openai_evals/registry/evals/support.yaml"


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
    assert expected(plan) == {  # ignore_case: true, for these cases
        "line-1": {"contains_any": {"value": ["30 days"], "case_sensitive": False}},
        "line-2": {"contains_any": {"value": ["Sunday", "public holidays"], "case_sensitive": False}},
    }
    assert graders(plan) == {"contains-any": ("contains_any", {}, None)}


def test_json_match_reads_a_json_array_and_refuses_what_it_would_never_match():
    plan = read(REGISTRY, "openai-evals", eval_name="support-json")

    assert [s.line for s in plan.specs] == [2, 3, 4]
    assert expected(plan) == {
        "line-2": {"json_equals": {"const": {"order": 7, "items": ["shirt"]}}},
        "line-3": {"json_equals": {"enum": [{"refund": True}, {"refund": True, "days": 30}]}},
        "line-4": {"ideal": ['{"coupon": null}']},
    }
    assert dropped(plan) == [
        "json_samples.json line 4: class JsonMatch: an ideal holds null, which JsonMatch never matches"
    ]


def test_fuzzy_match_is_not_carried_and_keeps_the_ideal_where_no_grader_reads_it():
    plan = read(REGISTRY, "openai-evals", eval_name="support-fuzzy")

    assert expected(plan) == {"line-1": {"ideal": "B"}, "q2": {"ideal": ["B", "Pro"]}}
    assert dropped(plan) == [
        "line 29: class FuzzyMatch: no fuzzy-match grader kind yet; each sample's ideal is kept as "
        "expected.ideal"
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
        "openai_tone": True,
        "openai_usefulness": True,
    }
    assert expected(plan)["t-2"]["string_check"][0] == {"value": "Software", "operation": "eq"}
    assert graders(plan)["string-check"] == ("string_check", {}, None)
    assert graders(plan)["text-similarity"] == ("text_similarity", {}, None)
    assert messages(plan)["t-2"] == [{"role": "user", "content": "Excel keeps crashing"}]
    assert dropped(plan) == [
        "line 30: testing_criteria length: a python grader is code, and no foreign code is run",
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
