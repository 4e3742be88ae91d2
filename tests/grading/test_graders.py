"""Unit tests of the built-in code graders and the grader registry (no database)."""

import pytest
from django.core.exceptions import ValidationError

from grading_app.graders import get_kind, kind_keys
from grading_app.graders.base import GradingInput
from grading_app.graders.text import normalise


def item(output, **expected):
    return GradingInput(case_input={}, expected=expected, output=output)


def grade(kind, output, config=None, **expected):
    grader = get_kind(kind)
    return grader.grade(item(output, **expected), grader.validate_config(config))


def config_error(kind, config):
    with pytest.raises(ValidationError) as excinfo:
        get_kind(kind).validate_config(config)
    return excinfo.value.message_dict


# Registry


def test_builtin_code_kinds_are_registered():
    assert {"exact_match", "contains", "not_contains", "regex", "json_valid"} <= set(kind_keys())


def test_unknown_kind_is_a_validation_error_naming_it():
    with pytest.raises(ValidationError) as excinfo:
        get_kind("no_such_kind")
    messages = excinfo.value.message_dict["kind"]
    assert "no_such_kind" in messages[0]
    assert "exact_match" in messages[0]  # the known kinds are listed


def test_empty_config_gets_the_declared_defaults():
    assert get_kind("exact_match").validate_config(None) == {
        "expected_field": "answer",
        "normalize": True,
        "case_sensitive": False,
    }
    assert get_kind("exact_match").validate_config("") == get_kind("exact_match").validate_config({})


def test_unknown_config_key_is_rejected_by_name():
    messages = config_error("exact_match", {"normalise": True})
    assert "normalise" in messages["config"][0]


def test_config_value_of_the_wrong_type_is_rejected_by_name():
    messages = config_error("exact_match", {"normalize": "yes"})
    assert "normalize" in messages["config"][0]


def test_bool_is_not_accepted_where_a_string_is_declared():
    messages = config_error("contains", {"expected_field": True})
    assert "expected_field" in messages["config"][0]


def test_config_that_is_not_an_object_is_rejected():
    messages = config_error("contains", ["contains"])
    assert "config" in messages


# Normalisation


def test_normalise_ignores_case_whitespace_and_final_punctuation():
    assert normalise("  The   Answer\tis\nParis!  ") == "the answer is paris"
    assert normalise("Yes.") == normalise("yes") == "yes"
    assert normalise("Really?!") == "really"


def test_normalise_keeps_case_when_asked():
    assert normalise("Paris.", case_sensitive=True) == "Paris"


def test_normalise_folds_compatibility_characters():
    assert normalise("\uff21\uff22\uff23") == "abc"  # full-width ABC (NFKC)


def test_normalise_drops_final_punctuation_separated_by_a_space():
    # French typography puts a space before ! and ?: "Oui !" should equal "Oui".
    assert normalise("Oui !") == "oui"
    assert grade("exact_match", "Oui !", answer="Oui").passed is True


# exact_match


def test_exact_match_passes_on_normalised_equal_output():
    outcome = grade("exact_match", "  paris. ", answer="Paris")
    assert outcome.passed is True
    assert outcome.score == 1.0


def test_exact_match_fails_on_a_different_answer():
    outcome = grade("exact_match", "Lyon", answer="Paris")
    assert outcome.passed is False
    assert outcome.score == 0.0
    assert "lyon" in outcome.rationale  # reported as compared: normalised


def test_exact_match_accepts_any_of_several_references():
    assert grade("exact_match", "No", answer=["no", "nope"]).passed is True
    assert grade("exact_match", "maybe", answer=["no", "nope"]).passed is False


def test_exact_match_without_normalisation_is_literal():
    assert grade("exact_match", "paris", {"normalize": False}, answer="Paris").passed is False
    assert grade("exact_match", "Paris", {"normalize": False}, answer="Paris").passed is True


def test_exact_match_case_sensitive_keeps_case_but_still_normalises_whitespace():
    config = {"case_sensitive": True}
    assert grade("exact_match", "paris", config, answer="Paris").passed is False
    assert grade("exact_match", " Paris. ", config, answer="Paris").passed is True


def test_exact_match_reads_the_configured_expected_field():
    outcome = grade("exact_match", "42", {"expected_field": "number"}, number=42)
    assert outcome.passed is True


def test_exact_match_does_not_apply_without_a_reference():
    assert grade("exact_match", "Paris", contains="Paris") is None


def test_exact_match_fails_a_missing_output():
    assert grade("exact_match", None, answer="Paris").passed is False


def test_exact_match_compares_json_output_as_its_serialisation():
    outcome = grade("exact_match", {"b": 2, "a": 1}, answer='{"a": 1, "b": 2}')
    assert outcome.passed is True


# contains / not_contains


def test_contains_passes_when_every_string_appears_ignoring_case():
    outcome = grade("contains", "Refunds take 5 BUSINESS days", contains=["refunds", "business"])
    assert outcome.passed is True
    assert outcome.score == 1.0


def test_contains_fails_and_scores_the_share_found():
    outcome = grade("contains", "Refunds are possible", contains=["refunds", "30 days"])
    assert outcome.passed is False
    assert outcome.score == 0.5
    assert "30 days" in outcome.rationale


def test_contains_accepts_a_single_string():
    assert grade("contains", "see doc-7", contains="doc-7").passed is True


def test_contains_any_mode_needs_one_string():
    config = {"mode": "any"}
    assert grade("contains", "sorry, no", config, contains=["no", "cannot"]).passed is True
    assert grade("contains", "yes", config, contains=["no", "cannot"]).passed is False


def test_contains_case_sensitive_respects_case():
    config = {"case_sensitive": True}
    assert grade("contains", "refund", config, contains="Refund").passed is False
    assert grade("contains", "Refund", config, contains="Refund").passed is True


def test_contains_does_not_apply_without_expected_strings():
    assert grade("contains", "anything", answer="x") is None
    assert grade("contains", "anything", contains=[]) is None


def test_contains_reads_the_configured_expected_field():
    config = {"expected_field": "keywords"}
    assert grade("contains", "alpha beta", config, keywords=["beta"]).passed is True
    assert grade("contains", "alpha beta", config, contains=["beta"]) is None


def test_contains_rejects_an_unknown_mode():
    messages = config_error("contains", {"mode": "most"})
    assert "mode" in messages["config"][0]


def test_contains_sees_a_json_object_output_as_serialised_text():
    outcome = grade("contains", {"status": "refunded", "amount": 12}, contains='"status": "refunded"')
    assert outcome.passed is True


def test_not_contains_passes_when_no_forbidden_string_appears():
    outcome = grade("not_contains", "Happy to help", not_contains=["password", "ssn"])
    assert outcome.passed is True
    assert outcome.score == 1.0


def test_not_contains_fails_when_a_forbidden_string_appears_ignoring_case():
    outcome = grade("not_contains", "Your PASSWORD is hunter2", not_contains=["password", "ssn"])
    assert outcome.passed is False
    assert outcome.score == 0.5
    assert "password" in outcome.rationale


def test_not_contains_does_not_apply_without_forbidden_strings():
    assert grade("not_contains", "Your password", contains=["password"]) is None


def test_not_contains_checks_json_output_keys_too():
    assert grade("not_contains", {"ssn": "123"}, not_contains="ssn").passed is False


# regex


def test_regex_passes_when_the_pattern_is_found():
    outcome = grade("regex", "Order #12345 confirmed", pattern=r"#\d{5}\b")
    assert outcome.passed is True
    assert outcome.score == 1.0


def test_regex_fails_when_the_pattern_is_absent():
    outcome = grade("regex", "Order confirmed", pattern=r"#\d{5}")
    assert outcome.passed is False
    assert outcome.score == 0.0


def test_regex_full_match_needs_the_whole_output():
    config = {"full_match": True}
    assert grade("regex", "ID: 123", config, pattern=r"\d+").passed is False
    assert grade("regex", "123", config, pattern=r"\d+").passed is True


def test_regex_ignore_case():
    assert grade("regex", "YES", pattern="yes").passed is False
    assert grade("regex", "YES", {"ignore_case": True}, pattern="yes").passed is True


def test_regex_configured_pattern_applies_to_every_case():
    outcome = grade("regex", "2024-01-31", {"pattern": r"^\d{4}-\d{2}-\d{2}$"})
    assert outcome.passed is True


def test_regex_does_not_apply_without_a_pattern():
    assert grade("regex", "anything", answer="x") is None


def test_regex_invalid_pattern_in_a_case_raises_instead_of_grading():
    with pytest.raises(ValueError, match="invalid pattern"):
        grade("regex", "anything", pattern="([unclosed")


def test_regex_invalid_configured_pattern_is_a_config_error():
    messages = config_error("regex", {"pattern": "([unclosed"})
    assert "pattern" in messages["config"][0]


def test_regex_sees_a_json_object_output_as_serialised_text():
    assert grade("regex", {"total": 12}, pattern=r'"total": 12\b').passed is True


JS = {"flavor": "ecmascript"}


@pytest.mark.parametrize(
    "pattern, output, python, javascript",
    [
        (r"^\d+$", "42\n", True, False),  # $ before a final newline: Python only
        (r"^\w+$", "café", True, False),
        (r"^a.b$", "a\rb", True, False),
        (r"^.$", "\U0001f600", True, False),  # an emoji is two code units to JavaScript
        (r"^..$", "\U0001f600", False, True),
        (r"\a", "a", False, True),  # an identity escape in JavaScript; a bell in Python
    ],
)
def test_regex_ecmascript_flavor_decides_as_javascript_where_python_differs(
    pattern, output, python, javascript
):
    assert grade("regex", output, pattern=pattern).passed is python
    assert grade("regex", output, JS, pattern=pattern).passed is javascript


def test_regex_ecmascript_pattern_javascript_refuses_is_a_broken_case_not_a_fail():
    with pytest.raises(ValueError, match="invalid pattern in case: Nothing to repeat"):
        grade("regex", "anything", JS, pattern="*a")


def test_regex_ecmascript_pattern_not_carried_is_a_broken_case_not_a_guess():
    with pytest.raises(ValueError, match="backreference"):
        grade("regex", "aa", JS, pattern=r"(a)\1")


def test_regex_flavor_must_be_known_and_ecmascript_takes_no_ignore_case():
    assert "flavor" in config_error("regex", {"flavor": "pcre"})["config"][0]
    assert "ignore_case" in config_error("regex", {"flavor": "ecmascript", "ignore_case": True})["config"][0]
    assert "pattern" in config_error("regex", {"flavor": "ecmascript", "pattern": "(?i)x"})["config"][0]


# json_valid


def test_json_valid_passes_json_text():
    assert grade("json_valid", '{"a": [1, 2]}').passed is True


def test_json_valid_passes_an_already_parsed_object():
    assert grade("json_valid", {"a": 1}).passed is True


def test_json_valid_fails_malformed_text():
    outcome = grade("json_valid", '{"a": 1,')
    assert outcome.passed is False
    assert outcome.score == 0.0
    assert "not valid JSON" in outcome.rationale


def test_json_valid_fails_a_missing_output_rather_than_skipping_it():
    outcome = grade("json_valid", None)
    assert outcome is not None
    assert outcome.passed is False


def test_json_valid_require_object_rejects_other_json_values():
    config = {"require_object": True}
    assert grade("json_valid", "[1, 2]", config).passed is False
    assert grade("json_valid", [1, 2], config).passed is False
    assert grade("json_valid", '{"a": 1}', config).passed is True


def test_json_valid_rejects_a_non_bool_require_object():
    messages = config_error("json_valid", {"require_object": 1})
    assert "require_object" in messages["config"][0]


def test_there_are_at_least_twenty_code_kinds_each_with_a_config_schema_its_defaults_satisfy():
    from jsonschema import Draft202012Validator

    from grading_app.graders import get_kind, kind_keys

    code_kinds = [key for key in kind_keys() if not get_kind(key).needs_rubric]
    assert len(code_kinds) >= 20
    for key in kind_keys():
        kind = get_kind(key)
        schema = kind.config_schema()
        Draft202012Validator.check_schema(schema)
        defaults = {k: v["default"] for k, v in schema["properties"].items() if "default" in v}
        assert not list(Draft202012Validator(schema).iter_errors(defaults)), key
        assert kind.description, key
    assert get_kind("levenshtein").config_schema()["properties"]["threshold"] == {
        "type": "integer",
        "description": "Largest edit distance that passes.",
        "default": 5,
    }
    assert "negate" in get_kind("contains_any").config_schema()["properties"]
    assert "negate" not in get_kind("llm_judge").config_schema()["properties"]
