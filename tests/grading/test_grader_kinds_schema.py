"""json_schema: the output satisfies a JSON Schema (no database)."""

import pytest

from grading_app.graders import get_kind
from tests.grading.grading_helpers import config_error, grade

ORDER = {
    "type": "object",
    "required": ["id", "items"],
    "properties": {
        "id": {"type": "string"},
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"price": {"type": "number"}}},
        },
    },
}


def test_json_schema_is_registered_as_a_format_kind():
    assert get_kind("json_schema").dimension == "format"


def test_json_schema_passes_an_object_output_that_satisfies_the_case_schema():
    outcome = grade("json_schema", {"id": "A1", "items": [{"price": 3.5}]}, schema=ORDER)
    assert outcome.passed is True
    assert outcome.score == 1.0


def test_json_schema_parses_text_output_as_json():
    assert grade("json_schema", '{"id": "A1", "items": []}', schema=ORDER).passed is True


def test_json_schema_fails_and_names_the_failing_json_path():
    outcome = grade("json_schema", {"id": "A1", "items": [{"price": "3.50"}]}, schema=ORDER)
    assert outcome.passed is False
    assert outcome.score == 0.0
    assert outcome.rationale.startswith("$.items[0].price: ")
    assert "'number'" in outcome.rationale


def test_json_schema_reports_how_many_more_errors_there_are():
    outcome = grade("json_schema", {"items": [{"price": "x"}]}, schema=ORDER)
    assert "'id' is a required property" in outcome.rationale
    assert "(+1 more)" in outcome.rationale


def test_json_schema_fails_text_that_is_not_json():
    outcome = grade("json_schema", "Sure! Here is the order: {id: A1}", schema=ORDER)
    assert outcome.passed is False
    assert "not valid JSON" in outcome.rationale


def test_json_schema_fails_a_missing_output():
    outcome = grade("json_schema", None, schema=ORDER)
    assert outcome.passed is False
    assert outcome.rationale == "no output"


def test_json_schema_does_not_apply_without_a_schema():
    assert grade("json_schema", {"id": "A1"}, answer="A1") is None


def test_json_schema_configured_schema_applies_to_every_case():
    config = {"schema": {"type": "array"}}
    assert grade("json_schema", [1, 2], config).passed is True
    assert grade("json_schema", {"a": 1}, config).passed is False


def test_json_schema_empty_configured_schema_still_applies_and_accepts_anything():
    # {} is falsy but a real schema: the grade must exist, not fall back to "no schema".
    outcome = grade("json_schema", '"anything"', {"schema": {}})
    assert outcome is not None
    assert outcome.passed is True


def test_json_schema_false_schema_in_a_case_rejects_everything():
    assert grade("json_schema", {"a": 1}, schema=False).passed is False


def test_json_schema_reads_the_configured_expected_field():
    config = {"expected_field": "reply_schema"}
    assert grade("json_schema", "[]", config, reply_schema={"type": "object"}).passed is False
    assert grade("json_schema", "[]", config, schema={"type": "array"}) is None


def test_json_schema_uses_draft_2020_12_by_default():
    # prefixItems is 2020-12 only; an older draft would ignore it and pass.
    outcome = grade("json_schema", ["x"], schema={"prefixItems": [{"type": "integer"}]})
    assert outcome.passed is False
    assert outcome.rationale.startswith("$[0]: ")


def test_json_schema_honours_the_draft_named_by_dollar_schema():
    # The array form of "items" is valid in draft-07 and invalid in 2020-12.
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "integer"}]}
    assert grade("json_schema", [1], schema=schema).passed is True
    assert grade("json_schema", ["x"], schema=schema).passed is False


def test_json_schema_asserts_formats_only_when_configured():
    schema = {"type": "string", "format": "email"}
    assert grade("json_schema", '"not-an-email"', schema=schema).passed is True
    assert grade("json_schema", '"not-an-email"', {"check_formats": True}, schema=schema).passed is False
    assert grade("json_schema", '"a@example.com"', {"check_formats": True}, schema=schema).passed is True


def test_json_schema_invalid_schema_in_a_case_raises_instead_of_grading():
    with pytest.raises(ValueError, match="invalid JSON Schema in case"):
        grade("json_schema", {"a": 1}, schema={"type": "no-such-type"})


def test_json_schema_non_schema_value_in_a_case_raises():
    with pytest.raises(ValueError, match="invalid JSON Schema in case"):
        grade("json_schema", {"a": 1}, schema="an object please")


def test_json_schema_invalid_configured_schema_is_a_config_error_naming_it():
    message = config_error("json_schema", {"schema": {"type": "no-such-type"}})
    assert "config.schema" in message


def test_json_schema_configured_schema_must_be_an_object():
    assert "config.schema" in config_error("json_schema", {"schema": "object"})


def test_json_schema_rejects_a_non_bool_check_formats():
    assert "check_formats" in config_error("json_schema", {"check_formats": "yes"})
