"""is_json, contains_json and json_path: JSON in the output, found and checked (no database)."""

import pytest

from grading_app.graders.structured import embedded_json, same_json
from tests.grading.grading_helpers import config_error, grade

ORDER_SCHEMA = {"type": "object", "required": ["total"], "properties": {"total": {"type": "number"}}}


def test_same_json_treats_numbers_as_json_does_but_not_booleans():
    assert same_json({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert not same_json(True, 1)
    assert not same_json({"a": 1}, {"a": 1, "b": None})
    assert not same_json([1, 2], [2, 1])


def test_embedded_json_finds_objects_and_arrays_in_prose_and_fences():
    text = 'Here you go:\n```json\n{"total": 12, "items": [1, 2]}\n```\nand also [3, 4]. Not {this}.'
    assert embedded_json(text) == [{"total": 12, "items": [1, 2]}, [3, 4]]


# is_json


def test_is_json_passes_whole_json_and_fails_prose():
    assert grade("is_json", '{"a": 1}', is_json=True).passed
    assert grade("is_json", {"a": 1}, is_json=True).passed
    outcome = grade("is_json", 'Sure! {"a": 1}', is_json=True)
    assert outcome.passed is False
    assert "not JSON" in outcome.rationale


def test_is_json_with_a_schema_from_the_case():
    assert grade("is_json", '{"total": 3}', is_json={"schema": ORDER_SCHEMA}).passed
    outcome = grade("is_json", '{"total": "3"}', is_json={"schema": ORDER_SCHEMA})
    assert outcome.passed is False
    assert "$.total" in outcome.rationale


def test_is_json_refuses_false_and_a_broken_schema():
    with pytest.raises(ValueError, match="must be true, or an object with a schema"):
        grade("is_json", "{}", is_json=False)
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        grade("is_json", "{}", is_json={"schema": {"type": "nonsense"}})


# contains_json


def test_contains_json_finds_json_inside_text():
    assert grade("contains_json", 'The order: {"total": 3}. Done.', contains_json=True).passed
    outcome = grade("contains_json", "No JSON here, only {braces}.", contains_json=True)
    assert outcome.passed is False


def test_contains_json_with_a_schema_needs_one_embedded_value_satisfying_it():
    text = 'First {"id": 1}, then {"total": 9.5}.'
    assert grade("contains_json", text, contains_json={"schema": ORDER_SCHEMA}).passed
    outcome = grade("contains_json", 'Only {"total": "9"}', contains_json={"schema": ORDER_SCHEMA})
    assert outcome.passed is False
    assert "not as the schema says" in outcome.rationale


def test_contains_json_schema_from_the_grader_config():
    outcome = grade("contains_json", '{"id": 1}', {"schema": ORDER_SCHEMA}, contains_json=True)
    assert outcome.passed is False


# json_path


def test_json_path_compares_the_value_at_the_path():
    output = '{"order": {"total": 42, "items": [{"sku": "a"}, {"sku": "b"}]}}'
    assert grade("json_path", output, json_path={"path": "$.order.total", "value": 42}).passed
    outcome = grade("json_path", output, json_path={"path": "$.order.total", "value": 41})
    assert outcome.passed is False
    assert "$.order.total is 42, expected 41" in outcome.rationale
    assert grade("json_path", output, json_path={"path": "$.order.items[*].sku", "value": ["a", "b"]}).passed


def test_json_path_several_checks_and_a_missing_path():
    output = {"a": 1, "b": {"c": "x"}}
    checks = [{"path": "$.a", "value": 1}, {"path": "$.b.c", "value": "x"}]
    assert grade("json_path", output, json_path=checks).passed
    outcome = grade("json_path", output, json_path=[{"path": "$.zzz", "value": 1}])
    assert outcome.passed is False
    assert "matches nothing" in outcome.rationale


def test_json_path_from_the_grader_config_with_a_bare_value():
    assert grade("json_path", '{"status": "ok"}', {"path": "$.status"}, json_path="ok").passed


def test_json_path_fails_output_that_is_not_json():
    assert grade("json_path", "total: 42", json_path={"path": "$.total", "value": 42}).passed is False


def test_json_path_refuses_bad_paths():
    assert "invalid JSONPath" in config_error("json_path", {"path": "$.a["})
    with pytest.raises(ValueError, match="invalid JSONPath"):
        grade("json_path", "{}", json_path={"path": "a..[", "value": 1})
    with pytest.raises(ValueError, match="needs a path"):
        grade("json_path", "{}", json_path={"value": 1})


@pytest.mark.parametrize("text", ["NaN", "[1, Infinity]", '{"loss": -Infinity}'])
@pytest.mark.parametrize("kind", ["is_json", "json_valid", "json_schema"])
def test_nan_and_infinity_are_not_json(kind, text):
    # Python's json module reads them; JSON has no such values and JSON.parse refuses them.
    expected = {"is_json": {"is_json": True}, "json_valid": {}, "json_schema": {"schema": {}}}[kind]
    outcome = grade(kind, text, **expected)
    assert outcome.passed is False


def test_contains_json_skips_an_embedded_value_holding_nan():
    assert grade("contains_json", 'result: {"loss": NaN}', contains_json=True).passed is False
    assert grade("contains_json", 'result: {"loss": 0.5}', contains_json=True).passed is True
