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


# promptfoo, OpenAI Evals, inspect_ai, DeepEval, LangSmith and Langfuse: tests/datasets/corpus/
# (the files) and tests/datasets/test_corpus_*.py (what each becomes).


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


def test_a_csv_cell_larger_than_the_csv_modules_default_limit_exports_and_imports_again():
    big = "x" * (200 * 1024)  # the csv module refuses fields over 128 KiB unless told otherwise
    specs = parse_cases(jsonl(case("big", expected={"answer": big})), "jsonl")

    back = parse_cases(export_csv(spec.to_dict() for spec in specs).encode(), "csv")

    assert back[0].expected == {"answer": big}
