"""contains_all/any, starts_with, ends_with, equals, string_check, length; the object form and
negate (no database)."""

import pytest

from grading_app.graders import get_kind
from grading_app.graders.base import GradingInput
from tests.grading.grading_helpers import config_error, grade


def evaluate(kind, output, config=None, **expected):
    """As a run grades: config validated, then evaluate() (which applies config.negate)."""
    grader = get_kind(kind)
    item = GradingInput(case_input={}, expected=expected, output=output)
    return grader.evaluate(item, grader.validate_config(config))


# contains_all / contains_any


def test_contains_all_needs_every_string_case_sensitively_by_default():
    assert grade("contains_all", "Refunds within 30 days", contains_all=["Refunds", "30 days"]).passed
    outcome = grade("contains_all", "refunds within 30 days", contains_all=["Refunds", "30 days"])
    assert outcome.passed is False
    assert outcome.score == 0.5
    assert "Refunds" in outcome.rationale


def test_contains_all_ignores_case_when_the_case_says_so():
    expected = {"value": ["REFUNDS", "30 DAYS"], "case_sensitive": False}
    assert grade("contains_all", "refunds within 30 days", contains_all=expected).passed


def test_contains_all_ignores_case_when_the_grader_says_so():
    outcome = grade("contains_all", "refunds", {"case_sensitive": False}, contains_all="REFUNDS")
    assert outcome.passed


def test_contains_any_needs_one_string():
    assert grade("contains_any", "We ship to Canada", contains_any=["Canada", "Mexico"]).passed
    outcome = grade("contains_any", "We ship to canada", contains_any=["Canada", "Mexico"])
    assert outcome.passed is False
    assert "none of" in outcome.rationale


def test_contains_any_without_its_key_does_not_apply():
    assert grade("contains_any", "anything", contains=["x"]) is None


@pytest.mark.parametrize("value", [[], [1, 2], 3, {"case_sensitive": True}])
def test_contains_any_refuses_a_malformed_value(value):
    with pytest.raises(ValueError, match=r"expected\.contains_any"):
        grade("contains_any", "text", contains_any=value)


def test_several_object_assertions_must_all_hold():
    expected = [{"value": ["tea"]}, {"value": ["COFFEE"], "case_sensitive": False}]
    assert grade("contains_any", "tea and coffee", contains_any=expected).passed
    outcome = grade("contains_any", "tea only", contains_any=expected)
    assert outcome.passed is False
    assert outcome.rationale.startswith("expected.contains_any[1]:")


def test_the_object_form_refuses_unknown_options_and_wrong_types():
    with pytest.raises(ValueError, match=r"unknown key\(s\) threshold"):
        grade("contains_any", "x", contains_any={"value": ["x"], "threshold": 2})
    with pytest.raises(ValueError, match="case_sensitive has the wrong type"):
        grade("contains_any", "x", contains_any={"value": ["x"], "case_sensitive": "no"})


def test_a_case_can_negate_one_assertion():
    expected = [{"value": ["refund"]}, {"value": ["guarantee"], "negate": True}]
    assert grade("contains_all", "a refund", contains_all=expected).passed
    outcome = grade("contains_all", "a refund, guaranteed: guarantee", contains_all=expected)
    assert outcome.passed is False
    assert "negated" in outcome.rationale


# negate in the config: every code kind has it


def test_negate_inverts_the_verdict_and_score_and_says_so():
    plain = evaluate("contains_any", "hello world", contains_any=["hello", "x"])
    inverted = evaluate("contains_any", "hello world", {"negate": True}, contains_any=["hello", "x"])
    assert plain.passed is True
    assert inverted.passed is False
    assert inverted.score == pytest.approx(1 - plain.score)
    assert inverted.rationale.startswith("negated: passes unnegated")


def test_negate_leaves_a_case_the_kind_does_not_grade_ungraded():
    assert evaluate("contains_any", "hello", {"negate": True}) is None


def test_negate_works_on_the_older_kinds_too():
    assert evaluate("regex", "abc", {"negate": True}, pattern="\\d").passed is True
    assert evaluate("contains", "abc", {"negate": True}, contains=["a"]).passed is False


def test_negate_must_be_a_bool_and_judges_do_not_take_it():
    assert "negate" in config_error("equals", {"negate": "yes"})
    assert "Unknown key(s) for llm_judge: negate" in config_error("llm_judge", {"negate": True})


def test_evaluate_fills_config_keys_a_stored_grader_lacks():
    grader = get_kind("starts_with")
    item = GradingInput(case_input={}, expected={"starts_with": "Yes"}, output="Yes.")
    # A config saved before "strip" and "negate" existed.
    assert grader.evaluate(item, {"expected_field": "starts_with", "case_sensitive": True}).passed


# starts_with / ends_with


def test_starts_with_as_written():
    assert grade("starts_with", "Yes, you can.", starts_with="Yes").passed
    assert grade("starts_with", "yes, you can.", starts_with="Yes").passed is False
    assert grade("starts_with", "yes, you can.", starts_with={"value": "Yes", "case_sensitive": False}).passed


def test_starts_with_strip_option_ignores_leading_whitespace():
    assert grade("starts_with", "  Yes", starts_with="Yes").passed is False
    assert grade("starts_with", "  Yes", {"strip": True}, starts_with="Yes").passed


def test_starts_with_a_list_accepts_any_prefix():
    assert grade("starts_with", "No.", starts_with=["Yes", "No"]).passed


def test_ends_with():
    outcome = grade("ends_with", "Thanks for asking!", ends_with="asking!")
    assert outcome.passed
    assert grade("ends_with", "Thanks for asking.", ends_with="asking!").passed is False


def test_starts_with_refuses_a_number():
    with pytest.raises(ValueError, match=r"expected\.starts_with must be a string"):
        grade("starts_with", "1", starts_with=1)


# equals


def test_equals_is_exact_without_normalisation():
    assert grade("equals", "Paris", equals="Paris").passed
    assert grade("equals", "Paris.", equals="Paris").passed is False
    assert grade("equals", "paris", equals="Paris").passed is False
    assert grade("equals", " Paris", equals="Paris").passed is False


def test_equals_compares_json_values_as_json():
    assert grade("equals", '{"b": 2, "a": 1.0}', equals={"value": {"a": 1, "b": 2}}).passed
    assert grade("equals", {"a": True}, equals={"value": {"a": 1}}).passed is False
    assert grade("equals", "not json", equals={"value": [1]}).passed is False
    assert grade("equals", "[1, 2]", equals=[1, 2]).passed


# string_check


@pytest.mark.parametrize(
    ("operation", "output", "passed"),
    [
        ("eq", "Paris", True),
        ("eq", "paris", False),
        ("ne", "Lyon", True),
        ("ne", "Paris", False),
        ("like", "It is Paris.", True),
        ("like", "It is paris.", False),
        ("ilike", "It is PARIS.", True),
        ("ilike", "It is Lyon.", False),
    ],
)
def test_string_check_operations(operation, output, passed):
    outcome = grade("string_check", output, string_check={"value": "Paris", "operation": operation})
    assert outcome.passed is passed
    assert outcome.score == float(passed)


def test_string_check_refuses_an_unknown_operation():
    assert "config.operation must be one of eq, ne, like, ilike" in config_error(
        "string_check", {"operation": "contains"}
    )
    with pytest.raises(ValueError, match="operation must be one of"):
        grade("string_check", "x", string_check={"value": "x", "operation": "gt"})


# length


def test_length_bounds_in_characters_and_words():
    assert grade("length", "hello", length={"min": 2, "max": 5}).passed
    assert grade("length", "hello!", length={"max": 5}).passed is False
    assert grade("length", "one two three", length={"max": 3, "unit": "words"}).passed
    outcome = grade("length", "one two three four", length={"max": 3, "unit": "words"})
    assert outcome.passed is False
    assert "4 words" in outcome.rationale


def test_length_bounds_from_the_grader_config():
    assert grade("length", "x" * 300, {"max": 200}, length=True).passed is False


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"unit": "words"}, "needs min or max"),
        (12, "must be an object"),
        ({"min": 5, "max": 2}, "min is larger than config.max"),
        ({"max": -1}, "must be >= 0"),
        ({"max": "ten"}, "max has the wrong type"),
    ],
)
def test_length_refuses_malformed_bounds(value, message):
    with pytest.raises(ValueError, match=message):
        grade("length", "text", length=value)
