"""assertion_set: several code checks on one case, combined as promptfoo combines a test's
assertions (weighted mean against a threshold, else all must pass; weight 0 never fails)."""

import pytest

from grading_app.graders import get_kind
from grading_app.graders.base import GradingInput
from tests.grading.grading_helpers import config_error, grade

OUTPUT = "Refunds within 30 days."
HAS_30 = {"kind": "contains_all", "expected": {"contains_all": "30 days"}, "binary": True}
HAS_RECEIPT = {"kind": "contains_all", "expected": {"contains_all": "receipt"}, "binary": True}


def graded(value, output=OUTPUT, config=None):
    return grade("assertion_set", output, config, assertion_set=value)


def test_without_a_threshold_every_assertion_must_pass_and_the_score_is_their_mean():
    outcome = graded({"assertions": [HAS_30, HAS_RECEIPT]})

    assert (outcome.passed, outcome.score) == (False, 0.5)
    assert "assertions[1]: missing: ['receipt']" in outcome.rationale
    assert graded({"assertions": [HAS_30]}).passed is True


def test_with_a_threshold_the_weighted_mean_decides():
    assert (graded({"threshold": 0.5, "assertions": [HAS_30, HAS_RECEIPT]}).passed) is True
    heavy = graded({"threshold": 0.6, "assertions": [HAS_30, {**HAS_RECEIPT, "weight": 2}]})
    assert (heavy.passed, heavy.score) == (False, pytest.approx(1 / 3))
    assert heavy.rationale.startswith("weighted score 0.33 < threshold 0.6")


def test_an_assertion_of_weight_zero_never_fails_and_counts_nothing():
    free = {**HAS_RECEIPT, "weight": 0}

    waived = graded({"assertions": [HAS_30, free]})
    assert (waived.passed, waived.score) == (True, 1.0)
    assert graded({"threshold": 1, "assertions": [HAS_30, free]}).passed is True
    # No weight at all: the score is 0 (promptfoo's), so any positive threshold fails.
    alone = graded({"threshold": 0.5, "assertions": [{**HAS_30, "weight": 0}]})
    assert (alone.passed, alone.score) == (False, 0.0)


def test_a_nested_set_has_its_own_threshold_and_weight_and_its_failure_is_never_waived():
    half = {"threshold": 0.5, "assertions": [HAS_RECEIPT, HAS_30]}

    assert graded({"assertions": [HAS_30, half]}).passed is True
    assert graded({"assertions": [HAS_30, {**half, "threshold": 0.75}]}).passed is False
    # Weight 0 waives a failing check, not a failing set (promptfoo forces only assertions).
    assert graded({"assertions": [HAS_30, {"weight": 0, "assertions": [HAS_RECEIPT]}]}).passed is False
    weighted = graded({"threshold": 0.7, "assertions": [HAS_30, {**half, "threshold": 0.9, "weight": 3}]})
    assert (weighted.passed, weighted.score) == (False, pytest.approx((1 + 3 * 0.5) / 4))


def test_binary_scores_one_or_zero_by_the_verdict_else_the_kinds_own_score_counts():
    near = {"kind": "levenshtein", "expected": {"levenshtein": {"value": "Danke!", "threshold": 0}}}
    equal = {"kind": "equals", "expected": {"equals": "Danke"}, "binary": True}

    as_scored = graded({"threshold": 0.9, "assertions": [equal, near]}, output="Danke")
    as_verdict = graded({"threshold": 0.9, "assertions": [equal, {**near, "binary": True}]}, output="Danke")

    assert as_scored.passed is True  # levenshtein's own score (similarity 5/6) lifts the mean
    assert (as_verdict.passed, as_verdict.score) == (False, 0.5)


def test_each_check_runs_with_its_own_config_negation_included():
    not_sorry = {
        "kind": "regex",
        "config": {"expected_field": "not_pattern", "negate": True},
        "expected": {"not_pattern": "[Ss]orry"},
        "binary": True,
    }

    assert graded({"assertions": [not_sorry]}).passed is True
    assert graded({"assertions": [not_sorry]}, output="Sorry, no.").passed is False


def test_the_set_itself_negates_like_every_code_kind():
    kind = get_kind("assertion_set")
    item = GradingInput({}, {"assertion_set": {"assertions": [HAS_RECEIPT]}}, OUTPUT)

    assert kind.evaluate(item, kind.validate_config({"negate": True})).passed is True


def test_it_does_not_apply_without_its_key_and_applies_without_running_the_checks():
    kind, config = get_kind("assertion_set"), get_kind("assertion_set").validate_config({})
    similar = {"kind": "embedding_similarity", "expected": {"similar": "Refunds"}}

    assert graded(None) is None
    # Asking whether it applies never calls out (the similarity check would ask an endpoint).
    assert kind.applies(GradingInput({}, {"assertion_set": {"assertions": [similar]}}, ""), config) is False
    configured = kind.validate_config({"embedding_endpoint": "emb", "embedding_model": "m"})
    assert (
        kind.applies(GradingInput({}, {"assertion_set": {"assertions": [similar]}}, ""), configured) is True
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"assertions": []}, "expected.assertion_set.assertions must be a non-empty list"),
        ({"threshold": "0.5", "assertions": [HAS_30]}, "expected.assertion_set.threshold must be a number"),
        ({"weight": 2, "assertions": [HAS_30]}, "expected.assertion_set: unknown key(s) weight"),
        ({"assertions": [{**HAS_30, "weight": True}]}, "assertions[0].weight must be a number"),
        ({"assertions": [{**HAS_30, "binary": "yes"}]}, "assertions[0].binary must be true or false"),
        ({"assertions": [{**HAS_30, "why": 1}]}, "assertions[0]: unknown key(s) why"),
        ({"assertions": [{"kind": "nope", "expected": {"x": 1}}]}, "assertions[0].kind: 'nope' is not"),
        ({"assertions": [{"kind": "llm_judge", "expected": {"x": 1}}]}, "llm_judge is a judge"),
        ({"assertions": [{"kind": "contains_all", "expected": {}}]}, "assertions[0].expected must be a non"),
        (
            {"assertions": [{**HAS_30, "config": {"case_sensitive": "no"}}]},
            "assertions[0].config: contains_all: config.case_sensitive has the wrong type",
        ),
        (
            {"assertions": [{"kind": "contains_all", "expected": {"answer": "30"}}]},
            "assertions[0] (contains_all) does not apply to its expected",
        ),
        (
            {"assertions": [{"kind": "contains_all", "expected": {"contains_all": 30}}]},
            "assertions[0] (contains_all): expected.contains_all must be a string or a non-empty list",
        ),
        (
            {"assertions": [{"assertions": [{"type": "contains"}]}]},
            "assertions[0].assertions[0]: unknown key(s) type",
        ),
        (
            {"assertions": [{"kind": "embedding_similarity", "expected": {"similar": "x"}}]},
            "embedding_similarity: config.endpoint is required",
        ),
    ],
)
def test_a_malformed_set_is_a_grade_error_naming_its_path(value, message):
    with pytest.raises(ValueError) as raised:
        graded(value)

    assert message in str(raised.value)


def test_its_config_names_only_its_field_and_the_embedding_endpoint_for_similarity_checks():
    assert "threshold" in config_error("assertion_set", {"threshold": 0.5})
    assert set(get_kind("assertion_set").config_schema()["properties"]) == {
        "expected_field",
        "embedding_endpoint",
        "embedding_model",
        "negate",
    }
