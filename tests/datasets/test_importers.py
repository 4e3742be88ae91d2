"""Case file importers: each format's happy path, line-numbered errors for bad files, round trips."""

import json

import pytest

from datasets_app.importers import CaseSpec, ImportFailed, export_csv, export_jsonl, parse_cases


def jsonl(*rows: dict | str) -> bytes:
    return "\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows).encode()


def case(key: str, **fields) -> dict:
    return {"key": key, "input": {"messages": [{"role": "user", "content": f"about {key}"}]}, **fields}


def errors_of(data: bytes, fmt: str, **options) -> list[str]:
    """Parse a file that must fail; the errors, rendered as the command prints them."""
    with pytest.raises(ImportFailed) as failed:
        parse_cases(data, fmt, **options)
    return [str(error) for error in failed.value.errors]


# jsonl


def test_jsonl_reads_every_case_field_and_fills_defaults():
    data = jsonl(
        case(
            "refund-01",
            tier="trusted",
            failure_class="factual",
            risk="high",
            pinned=True,
            expected={"answer": "No", "must_refuse": False},
            tags=["refunds"],
            status="active",
        ),
        "",
        case("refund-02"),
    )
    first, second = parse_cases(data, "jsonl")
    assert first == CaseSpec(
        key="refund-01",
        tier="trusted",
        failure_class="factual",
        risk="high",
        pinned=True,
        tags=["refunds"],
        input={"messages": [{"role": "user", "content": "about refund-01"}]},
        expected={"answer": "No", "must_refuse": False},
        status="active",
        line=1,
    )
    assert (second.key, second.line) == ("refund-02", 3)
    assert (second.tier, second.risk, second.pinned) == ("monitoring", "normal", False)
    assert (second.failure_class, second.status, second.tags, second.expected) == (None, None, [], {})
    assert type(second.tier) is str and type(second.risk) is str  # plain values, ready for json.dumps


def test_default_tier_applies_only_where_the_file_says_nothing():
    specs = parse_cases(jsonl(case("a"), case("b", tier="monitoring")), "jsonl", default_tier="trusted")
    assert [s.tier for s in specs] == ["trusted", "monitoring"]


def test_bad_json_names_its_line_and_every_other_bad_line():
    data = jsonl(case("a"), '{"key": "b", "input": ', case("c"), "[1, 2]")
    assert errors_of(data, "jsonl") == [
        "line 2: json: invalid JSON: Expecting value (column 23)",
        "line 4: json: expected a JSON object, got a list",
    ]


def test_missing_key_is_an_error_on_its_line():
    data = jsonl(case("a"), {"input": {"vars": {"q": 1}}})
    assert errors_of(data, "jsonl") == ["line 2: key: missing key"]


def test_duplicate_key_is_reported_on_the_second_line_naming_the_first():
    data = jsonl(case("a"), case("b"), case("a"))
    assert errors_of(data, "jsonl") == ["line 3: key: duplicate key 'a': first used on line 1"]


def test_wrong_tier_names_the_line_and_the_allowed_tiers():
    errors = errors_of(jsonl(case("a"), case("b", tier="gold")), "jsonl")
    assert errors == ["line 2: tier: 'gold' is not a valid tier; use one of: trusted, monitoring"]


def test_unknown_field_is_an_error_naming_it():
    errors = errors_of(jsonl(case("a", expectd={"answer": "x"}, note="y")), "jsonl")
    assert errors == ["line 1: fields: unknown field(s): expectd, note"]


def test_every_field_is_checked_and_all_errors_on_a_line_are_listed():
    bad = {"key": "x" * 201, "risk": "huge", "pinned": "yes", "status": "done", "failure_class": "not a slug"}
    errors = errors_of(jsonl({**bad, "input": {}, "expected": [], "tags": "t"}), "jsonl")
    assert errors[:5] == [
        "line 1: key: key is 201 characters long; the limit is 200",
        "line 1: risk: 'huge' is not a valid risk; use one of: low, normal, high",
        "line 1: status: 'done' is not a valid status; use one of: draft, in_review, active, retired",
        "line 1: pinned: pinned must be true or false, not 'yes'",
        "line 1: failure_class: 'not a slug' is not a failure class slug",
    ]
    # The shape messages are validate_case_content's own, shared with the admin and the API.
    assert [error.split(":")[:2] for error in errors[5:]] == [
        ["line 1", " input"],
        ["line 1", " expected"],
        ["line 1", " tags"],
    ]


def test_malformed_messages_and_whitespace_keys_are_errors():
    data = jsonl({"key": " a", "input": {"messages": [{"text": "hi"}]}}, {"key": "", "input": {"v": 1}})
    errors = errors_of(data, "jsonl")
    assert errors[0] == "line 1: key: key ' a' starts or ends with whitespace"
    assert errors[1].startswith("line 1: input: input.messages must be")
    assert errors[2:] == ["line 2: key: key must be a non-empty string, not ''"]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "promptfoo", "openai-evals"])
def test_empty_file_has_no_cases(fmt):
    assert errors_of(b"\n  \n", fmt) == ["line 1: file: the file has no cases"]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "promptfoo", "openai-evals"])
def test_non_utf8_bytes_name_the_line_of_the_first_bad_byte(fmt):
    data = b'{"key": "a"}\n{"key": "caf\xe9"}\n\xff\n'
    assert errors_of(data, fmt) == ["line 2: encoding: byte 0xe9 is not UTF-8; save the file as UTF-8"]


def test_unknown_format_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown format"):
        parse_cases(b"", "xlsx")


# csv


def test_csv_reads_columns_with_semicolon_or_json_tags_and_a_byte_order_mark():
    data = (
        "\ufeffkey,tier,failure_class,risk,pinned,tags,input,expected\n"
        'a,trusted,factual,high,true,refunds; billing,"{""vars"": {""q"": 1}}","{""answer"": ""No""}"\n'
        '\nb,,,,,"[""x;y""]","{""vars"": {""q"": 2}}",\n'
    ).encode()
    first, second = parse_cases(data, "csv")
    assert first == CaseSpec(
        "a",
        "trusted",
        "factual",
        "high",
        True,
        ["refunds", "billing"],
        {"vars": {"q": 1}},
        {"answer": "No"},
        None,
        2,
    )
    assert second == CaseSpec(
        "b", "monitoring", None, "normal", False, ["x;y"], {"vars": {"q": 2}}, {}, None, 4
    )


def test_csv_question_and_answer_columns_stand_in_for_input_and_expected():
    data = b'key,question,answer\nq1,"Can I get a refund\nafter 40 days?",No\nq2,Hello?,\n'
    first, second = parse_cases(data, "csv")
    content = "Can I get a refund\nafter 40 days?"
    assert first.input == {"messages": [{"role": "user", "content": content}]}
    assert (first.expected, first.line) == ({"answer": "No"}, 2)
    # The quoted cell spans two physical lines, so the next row starts on line 4.
    assert (second.key, second.expected, second.line) == ("q2", {}, 4)


def test_csv_bad_quoting_names_the_line():
    data = b'key,question\na,fine\nb,"broken"quote\nc,also fine\nd,"never closed\ne,unreachable\n'
    assert errors_of(data, "csv") == [
        "line 3: csv: bad CSV quoting: ',' expected after '\"'",
        # The open quote swallows the rest of the file, so the error names where it starts.
        "line 5: csv: bad CSV quoting: a quoted cell is never closed",
    ]


def test_csv_errors_name_physical_lines_and_reasons():
    data = (
        b"key,tier,prompt,expected\n"
        b"a,trusted,hi,\n"
        b"b,gold,hi,\n"
        b"c,trusted,hi,{not json\n"
        b"d,trusted\n"
        b"a,monitoring,hi,\n"
    )
    assert errors_of(data, "csv") == [
        "line 3: tier: 'gold' is not a valid tier; use one of: trusted, monitoring",
        "line 4: expected: invalid JSON in the expected cell: "
        "Expecting property name enclosed in double quotes (column 2)",
        "line 5: csv: expected 4 cells, found 2",
        "line 6: key: duplicate key 'a': first used on line 2",
    ]


def test_csv_cell_with_invalid_json_is_reported_once():
    data = b'key,input\na,"{""vars"": "\n'
    assert errors_of(data, "csv") == [
        "line 2: input: invalid JSON in the input cell: Expecting value (column 10)"
    ]


def test_csv_header_must_name_known_columns_with_a_key_and_one_input():
    assert errors_of(b"key,colour,input,question\n", "csv") == [
        "line 1: header: unknown column(s): colour",
        "line 1: header: give exactly one of the columns input, question, prompt",
    ]
    assert errors_of(b"id,input\n1,{}\n", "csv")[-1] == "line 1: header: missing column: key"


# promptfoo

PROMPTFOO_YAML = b"""
description: refund bot
prompts: ["{{question}}"]
defaultTest:
  assert:
    - type: not-contains
      value: As an AI
tests:
  - description: Refund after 40 days
    vars: {question: "Can I get a refund after 40 days?", plan: basic}
    metadata: {failure_class: factual, tier: trusted, risk: high}
    assert:
      - {type: equals, value: "No"}
      - {type: icontains, value: refund}
      - {type: contains-all, value: [policy, days]}
      - {type: regex, value: "^No"}
  - vars: {topic: sql}
    assert:
      - {type: is-json}
      - {type: contains-json, value: {type: object, required: [query]}}
"""


def test_promptfoo_yaml_maps_vars_metadata_and_asserts():
    first, second = parse_cases(PROMPTFOO_YAML, "promptfoo")
    assert first == CaseSpec(
        key="refund-after-40-days",
        tier="trusted",
        failure_class="factual",
        risk="high",
        pinned=False,
        tags=[],
        input={
            "vars": {"question": "Can I get a refund after 40 days?", "plan": "basic"},
            "messages": [{"role": "user", "content": "Can I get a refund after 40 days?"}],
        },
        expected={
            "not_contains": ["As an AI"],
            "answer": "No",
            "contains": ["refund", "policy", "days"],
            "pattern": "^No",
        },
        status=None,
        line=1,
    )
    assert (second.key, second.tier, second.failure_class, second.input) == (
        "test-2",
        "monitoring",
        None,
        {"vars": {"topic": "sql"}},
    )
    assert second.expected == {
        "not_contains": ["As an AI"],
        "schema": {"type": "object", "required": ["query"]},
    }


def test_promptfoo_accepts_a_json_list_of_tests():
    data = json.dumps([{"vars": {"prompt": "hi"}, "assert": [{"type": "contains-json"}]}]).encode()
    (spec,) = parse_cases(data, "promptfoo")
    assert spec.input["messages"] == [{"role": "user", "content": "hi"}]
    assert spec.expected == {"schema": {}}


def test_unsupported_promptfoo_assert_names_the_test_and_the_type():
    data = b"""
- vars: {q: a}
  assert: [{type: contains, value: x}]
- vars: {q: b}
  threshold: 0.5
  assert: [{type: equals, value: y}, {type: llm-rubric, value: is polite}]
"""
    errors = errors_of(data, "promptfoo")
    assert errors[0] == "test 2: test: unsupported test field(s): threshold"
    assert errors[1].startswith("test 2: assert: unsupported assert type 'llm-rubric' (assert 2); use: ")
    assert len(errors) == 2


def test_promptfoo_duplicate_descriptions_and_bad_values_name_the_test():
    data = b"""
tests:
  - {description: Same, vars: {q: a}, metadata: {tier: gold}}
  - {description: same!, vars: {q: b, doc: "file://doc.txt"}, assert: [{type: regex, value: "("}]}
"""
    assert errors_of(data, "promptfoo") == [
        "test 1: tier: 'gold' is not a valid tier; use one of: trusted, monitoring",
        "test 2: vars: var 'doc' refers to a file (file://doc.txt); inline its content",
        "test 2: assert: assert 1 (regex): '(' is not a valid regular expression: missing ), unterminated"
        " subpattern at position 0",
        "test 2: key: duplicate key 'same': first used on test 1",
    ]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (
            b"just a string\n",
            "line 1: file: a promptfoo file must be a list of tests or a mapping with `tests`",
        ),
        (b"prompts: [hi]\n", "line 1: tests: `tests` must be a list of tests"),
        (b"tests:\n  - vars: {q: [unclosed\n", "line 3: yaml: invalid YAML:"),
        (b'{"tests": [\n  {"vars": }\n]}', "line 2: json: invalid JSON: Expecting value (column 12)"),
    ],
)
def test_promptfoo_file_that_is_not_a_list_or_mapping_of_tests_is_refused(data, error):
    (message,) = errors_of(data, "promptfoo")
    assert message.startswith(error)


# openai-evals


def test_openai_evals_registry_samples_become_messages_and_answers():
    data = jsonl(
        {
            "input": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
            "ideal": "4",
        },
        {"id": 7, "input": "Capital of France?", "ideal": ["Paris", "paris"], "topic": "geo"},
    )
    first, second = parse_cases(data, "openai-evals", default_tier="trusted")
    assert first == CaseSpec(
        "line-1",
        "trusted",
        None,
        "normal",
        False,
        [],
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]},
        {"answer": "4"},
        None,
        1,
    )
    assert second.key == "7"
    assert second.input == {
        "messages": [{"role": "user", "content": "Capital of France?"}],
        "vars": {"topic": "geo"},
    }
    assert second.expected == {"answer": ["Paris", "paris"]}


def test_openai_evals_hosted_items_use_the_named_fields():
    data = jsonl(
        {"item": {"key": "q1", "question": "Refund after 40 days?", "answer": "No", "plan": "pro"}},
        {"item": {"question": [{"role": "user", "content": "Hi"}]}, "sample": {"output_text": "Hello"}},
    )
    first, second = parse_cases(data, "openai-evals", input_field="question", ideal_field="answer")
    assert first.key == "q1"
    assert first.input == {
        "messages": [{"role": "user", "content": "Refund after 40 days?"}],
        "vars": {"plan": "pro"},
    }
    assert first.expected == {"answer": "No"}
    assert (second.key, second.input, second.expected) == (
        "line-2",
        {"messages": [{"role": "user", "content": "Hi"}]},
        {},
    )


def test_openai_evals_errors_name_the_line():
    data = jsonl(
        {"input": "ok"},
        {"item": {"prompt": "wrong field"}},
        {"item": "not an object"},
        {"item": {"input": "x"}, "extra": 1},
        {"id": "dup", "input": "a"},
        {"id": "dup", "input": "b"},
        "{oops",
    )
    assert errors_of(data, "openai-evals") == [
        "line 2: input: 'input' is missing",
        "line 3: item: item must be an object, not a string",
        "line 4: fields: unknown field(s) beside item: extra",
        "line 6: key: duplicate key 'dup': first used on line 5",
        "line 7: json: invalid JSON: Expecting property name enclosed in double quotes (column 2)",
    ]


# export round trips

ROUND_TRIP = jsonl(
    case("plain"),
    case(
        "rich",
        tier="trusted",
        failure_class="factual",
        risk="high",
        pinned=True,
        tags=["a;b", "ünïcode", 'quote"d'],
        expected={"answer": "Oui !", "contains": ["x, y"], "number": 1.5},
        status="in_review",
    ),
    {
        "key": "multi",
        "input": {"messages": [{"role": "user", "content": "line one\nline two,\r\n\u2028 «»"}]},
    },
)


def test_jsonl_export_parses_back_to_the_same_specs():
    specs = parse_cases(ROUND_TRIP, "jsonl")
    exported = export_jsonl(spec.to_dict() for spec in specs)
    assert parse_cases(exported.encode(), "jsonl") == specs


def test_csv_export_parses_back_to_the_same_specs():
    specs = parse_cases(ROUND_TRIP, "jsonl")
    exported = export_csv(spec.to_dict() for spec in specs)
    assert exported.splitlines()[0] == "key,tier,failure_class,risk,pinned,tags,input,expected,status"
    back = parse_cases(exported.encode(), "csv")
    assert [spec.to_dict() for spec in back] == [spec.to_dict() for spec in specs]
    assert [spec.line for spec in back] == [2, 3, 4]
