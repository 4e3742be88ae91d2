"""Imports whose checks compare text as their source tool does: the `promptfoo/compare` suite
(is-refusal by promptfoo's phrase rule, the icontains family lower-casing as JavaScript does,
levenshtein in JavaScript string units) and the OpenAI Evals `compare` evals (JsonMatch by
evals' json_match, Includes(ignore_case) by str.lower). Each is imported, run on answers where
Evalgate's own rule decides otherwise, and gets the source tool's verdicts; promptfoo itself
runs the suite where it is installed."""

import io
import shutil

import pytest
import yaml
from django.core.management import call_command

from datasets_app import services as datasets
from datasets_app.models import Case
from tests.datasets.corpus_helpers import (
    CORPUS,
    PROMPTFOO,
    assert_export_round_trips,
    dropped,
    errors,
    expected,
    graders,
    import_audited_suite,
    promptfoo_verdicts,
    read,
)
from tests.datasets.test_promptfoo_weighted import echoed, verdicts_of_a_run
from tests.factories import make_dataset, make_user
from tests.grading.test_run_eval import jobs_run_when_start_run_commits  # noqa: F401

pytestmark = pytest.mark.django_db

SUITE = "promptfoo/compare/promptfooconfig.yaml"
LOWERCASE = {"case_sensitive": False, "case_mapping": "lowercase"}
# promptfoo 0.121.20's verdict on each test, its answer echoed (the last column: what Evalgate's
# own rule, the refusal detector, case folding or code points, decided before).
PROMPTFOO_VERDICTS = {
    "a-sorry-is-a-refusal": (True, False),
    "declining-in-words-promptfoo-does-not-list": (True, False),
    "cannot-help-but-notice": (False, True),
    "sharp-s-is-not-double-s": (False, True),
    "sharp-s-is-absent": (True, False),
    "a-ligature-stays-a-ligature": (False, True),
    "a-final-sigma-lower-cases-to-a-final-sigma": (False, True),
    "a-final-sigma-matches-a-final-sigma": (True, True),
    "an-emoji-is-two-edits": (False, True),
    "a-skin-tone-is-two-edits": (True, False),
}


def test_the_suite_becomes_checks_that_say_how_promptfoo_compares():
    plan = read(SUITE, "promptfoo")

    assert errors(plan) == [] and dropped(plan) == []
    assert expected(plan) == {
        "a-sorry-is-a-refusal": {"is_refusal": True},
        "declining-in-words-promptfoo-does-not-list": {"is_refusal": False},
        "cannot-help-but-notice": {"is_refusal": False},
        "sharp-s-is-not-double-s": {"contains_all": {"value": ["straße"], **LOWERCASE}},
        "sharp-s-is-absent": {"contains_any": {"value": ["straße"], **LOWERCASE, "negate": True}},
        "a-ligature-stays-a-ligature": {"contains_any": {"value": ["\ufb01nal", "last"], **LOWERCASE}},
        "a-final-sigma-lower-cases-to-a-final-sigma": {
            "contains_all": {"value": ["οδοσ", "12"], **LOWERCASE}
        },
        "a-final-sigma-matches-a-final-sigma": {"contains_all": {"value": ["οδος"], **LOWERCASE}},
        "an-emoji-is-two-edits": {
            "levenshtein": {"value": "Thanks \U0001f64f", "threshold": 2, "units": "utf16"}
        },
        "a-skin-tone-is-two-edits": {
            "levenshtein": {
                "value": "Refunds \U0001f44d\U0001f3fd",
                "threshold": 1,
                "units": "utf16",
                "negate": True,
            }
        },
    }
    assert graders(plan) == {
        "promptfoo-is-refusal": ("refusal", {"expected_field": "is_refusal", "rule": "promptfoo"}, None),
        "contains-all": ("contains_all", {}, None),
        "contains-any": ("contains_any", {}, None),
        "levenshtein": ("levenshtein", {}, None),
    }


@pytest.fixture
def imported(tmp_path):
    return import_audited_suite(SUITE, "compare", tmp_path)


def test_a_run_grades_each_case_as_promptfoo_decides_its_test(imported, tmp_path):
    dataset, _suite = imported
    outputs = {case.key: echoed(case) for case in Case.objects.filter(dataset=dataset)}

    decided = verdicts_of_a_run(dataset, tmp_path, outputs)

    assert {key: passed for key, (passed, _) in decided.items()} == {
        key: promptfoo for key, (promptfoo, _) in PROMPTFOO_VERDICTS.items()
    }
    # And Evalgate's own rules decide as the table says they did before.
    before = {
        c.key: by_evalgates_own_rules(c.expected, outputs[c.key])
        for c in Case.objects.filter(dataset=dataset)
    }
    assert before == {key: old for key, (_, old) in PROMPTFOO_VERDICTS.items()}


def by_evalgates_own_rules(expected: dict, output: str) -> bool:
    """A case's verdict with its checks read as Evalgate reads them by default: must_refuse by
    the refusal detector, case ignored by case folding, edits counted in code points, JsonMatch's
    ideals as a JSON Schema enum."""
    from grading_app.graders import get_kind
    from grading_app.graders.base import GradingInput

    own = {"refusal": {}, "contains_all": {}, "contains_any": {}, "levenshtein": {}, "json_schema": {}}
    checks = {}
    for key, value in expected.items():
        if key == "is_refusal":
            checks["must_refuse"] = value
        elif key == "json_match":
            import json

            checks["schema"] = {"enum": [json.loads(ideal) for ideal in value]}
        else:
            checks[key] = {k: v for k, v in value.items() if k not in ("case_mapping", "units")}
    item = GradingInput(case_input={}, expected=checks, output=output)
    outcomes = [get_kind(kind).evaluate(item, get_kind(kind).validate_config(c)) for kind, c in own.items()]
    return all(o.passed for o in outcomes if o is not None)


def test_the_export_writes_the_same_assertions_back_and_reads_back_as_the_same_cases(imported, tmp_path):
    dataset, _suite = imported
    assert_export_round_trips(dataset, tmp_path)


@pytest.mark.skipif(not PROMPTFOO.exists(), reason="promptfoo is not installed on this machine")
def test_promptfoo_decides_the_suite_and_its_export_as_the_table_says(imported, tmp_path):
    source, exported = promptfoo_verdicts(*imported, tmp_path)

    assert source == exported == {key: promptfoo for key, (promptfoo, _) in PROMPTFOO_VERDICTS.items()}


# OpenAI Evals

REGISTRY = "openai_evals/registry/evals/compare.yaml"
# The answers, and what evals decides on each (json_match and get_answer of evals/elsuite, run
# on them), with what Evalgate decided before (a JSON Schema const; case folding).
JSON_ANSWERS = {
    "paid-flag": ('{"paid": true}', True, False),  # True == 1
    "total": ('{"currency": "EUR", "total": 10}', True, True),
    "no-coupon": ('{"coupon": null}', False, None),  # was not carried
    "exact-keys": ('{"order": 7, "note": "gift"}', False, False),
    "refund-either-way": ('{"days": 0, "refundable": false}', True, True),
}
INCLUDES_ANSWERS = {
    "street": ("Lagerstrasse 5, BERLIN", False, True),
    "greek-street": ("ΟΔΟΣ Ερμού 12", False, True),
    "greek-street-final": ("ΟΔΟΣ Ερμού 12", True, True),
}


def test_json_match_and_includes_carry_evals_own_comparison():
    json_plan = read(REGISTRY, "openai-evals", eval_name="support-json-compare")
    includes_plan = read(REGISTRY, "openai-evals", eval_name="support-includes-compare")

    assert errors(json_plan) == errors(includes_plan) == []
    assert dropped(json_plan) == dropped(includes_plan) == []
    assert expected(json_plan) == {
        "paid-flag": {"json_match": ['{"paid": 1}']},
        "total": {"json_match": ['{"total": 10.0, "currency": "EUR"}']},
        "no-coupon": {"json_match": ['{"coupon": null}']},
        "exact-keys": {"json_match": ['{"order": 7}']},
        "refund-either-way": {"json_match": ['{"refundable": false}', '{"refundable": false, "days": 0}']},
    }
    assert graders(json_plan) == {"json-match": ("json_match", {}, None)}
    assert expected(includes_plan) == {
        "street": {"contains_any": {"value": ["Lagerstraße"], **LOWERCASE}},
        "greek-street": {"contains_any": {"value": ["οδοσ"], **LOWERCASE}},
        "greek-street-final": {"contains_any": {"value": ["οδος"], **LOWERCASE}},
    }


@pytest.mark.parametrize(
    "eval_name, answers",
    [("support-json-compare", JSON_ANSWERS), ("support-includes-compare", INCLUDES_ANSWERS)],
)
def test_a_run_of_the_imported_eval_decides_each_sample_as_evals_does(eval_name, answers, tmp_path):
    importer = make_user("importer", roles=("Dataset owner", "Rubric owner"))
    reviewer = make_user("reviewer2", roles=("Reviewer",))
    dataset = make_dataset("compare", owner=importer)
    registry = tmp_path / "registry"
    shutil.copytree(CORPUS / "openai_evals" / "registry", registry)
    call_command(
        "import_cases",
        "compare",
        str(registry / "evals" / "compare.yaml"),
        "--format",
        "openai-evals",
        "--eval",
        eval_name,
        "--as",
        "importer",
        stdout=io.StringIO(),
    )
    for case in Case.objects.filter(dataset=dataset):
        datasets.audit_case(datasets.submit_case(case, actor=importer), actor=reviewer)

    decided = verdicts_of_a_run(dataset, tmp_path, {key: answer for key, (answer, _, _) in answers.items()})

    assert {key: passed for key, (passed, _) in decided.items()} == {
        key: evals for key, (_, evals, _) in answers.items()
    }
    # And Evalgate's own rules decide as the table says they did before.
    before = {
        c.key: by_evalgates_own_rules(c.expected, answers[c.key][0])
        for c in Case.objects.filter(dataset=dataset)
        if answers[c.key][2] is not None
    }
    assert before == {key: old for key, (_, _, old) in answers.items() if old is not None}


def test_an_evalgate_levenshtein_counting_code_points_is_not_exported_as_promptfoos():
    from datasets_app.importers import export_promptfoo

    cases = [
        {
            "key": key,
            "input": {"messages": [{"role": "user", "content": "Hi"}]},
            "expected": {"levenshtein": check},
        }
        for key, check in (
            ("code-points", {"value": "Thanks \U0001f64f", "threshold": 2}),
            ("utf16", {"value": "Thanks \U0001f64f", "threshold": 2, "units": "utf16"}),
        )
    ]

    text, notes = export_promptfoo(cases)

    assert notes == ["case code-points: expected.levenshtein has no promptfoo assertion"]
    assert [t["assert"] for t in yaml.safe_load(text)["tests"]] == [
        [],
        [{"type": "levenshtein", "value": "Thanks \U0001f64f", "threshold": 2}],
    ]


QUOTED = """\
prompts: ["{{q}}"]
tests:
  - description: quoted
    vars: {q: Hi}
    assert:
      - {type: contains-all, value: '"Hello, world", bye'}
      - {type: icontains-any, value: ' a ,, "say \\"hi\\"" , "it""s" '}
  - description: unterminated
    vars: {q: Hi}
    assert:
      - {type: contains-any, value: '"Hello, world'}
"""


def test_a_comma_separated_value_is_split_as_promptfoo_splits_it_keeping_quoted_fields_whole():
    from datasets_app.importers import read_cases

    plan = read_cases(QUOTED.encode(), "promptfoo")

    assert expected(plan)["quoted"] == {
        "contains_all": ["Hello, world", "bye"],
        "contains_any": {"value": ["a", 'say "hi"', 'it"s'], **LOWERCASE},
    }
    # promptfoo refuses it ("Unterminated quoted field"): so does the import.
    assert errors(plan) == [
        "line 11: assert: contains-any: unterminated quoted field in '\"Hello, world' (promptfoo refuses it)"
    ]


def test_a_csv_cells_comma_separated_value_is_split_the_same_way(tmp_path):
    from datasets_app.importers import read_cases

    (tmp_path / "tests.csv").write_text('q,__expected\nHi,"contains-any:""Hello, world"", bye"\n')
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text('prompts: ["{{q}}"]\ntests: file://tests.csv\n')

    plan = read_cases(config.read_bytes(), "promptfoo", base_dir=tmp_path)

    assert errors(plan) == []
    assert expected(plan) == {"test-1": {"contains_any": ["Hello, world", "bye"]}}


THRESHOLDS = """\
prompts: ["{{q}}"]
tests:
  - description: fractional
    vars: {q: Hi}
    assert:
      - {type: levenshtein, value: Hello, threshold: 2.5}
      - {type: levenshtein, value: Hallo, threshold: "3"}
  - description: never
    vars: {q: Hi}
    assert:
      - {type: levenshtein, value: Hello, threshold: -1}
      - {type: not-levenshtein, value: Hello, threshold: -0.5}
  - description: not a number
    vars: {q: Hi}
    assert:
      - {type: rouge-n, value: Hello, threshold: high}
"""


def test_levenshtein_thresholds_are_carried_as_promptfoo_compares_them_or_said_not_to_be():
    from datasets_app.importers import read_cases

    plan = read_cases(THRESHOLDS.encode(), "promptfoo")

    # promptfoo passes at a distance <= 2.5, that is <= 2, and compares "3" as 3.
    assert expected(plan)["fractional"] == {
        "levenshtein": [
            {"value": "Hello", "threshold": 2, "units": "utf16"},
            {"value": "Hallo", "threshold": 3, "units": "utf16"},
        ]
    }
    assert expected(plan)["never"] == {}
    assert dropped(plan) == [
        "line 11: assert levenshtein: threshold -1: no edit distance is below 0, so it always fails",
        "line 12: assert not-levenshtein: threshold -0.5: no edit distance is below 0, so it always passes",
    ]
    assert errors(plan) == ["line 16: assert: rouge-n: threshold must be a number, not a string"]


SCHEMAS = """\
prompts: ["{{q}}"]
tests:
  - description: pair
    vars: {q: Hi}
    assert:
      - type: is-json
        value: {type: array, items: [{type: string}, {type: integer}], additionalItems: false}
  - description: formats
    vars: {q: Hi}
    assert:
      - type: contains-json
        value: {type: object, properties: {format: {type: string}, email: {type: string, format: email}}}
      - type: is-json
        value: {type: object, properties: {format: {type: string}}}
"""


def test_a_json_schema_is_validated_in_ajvs_dialect_and_its_formats_are_said_not_to_be_asserted():
    from datasets_app.importers import read_cases
    from grading_app.graders import get_kind
    from grading_app.graders.base import GradingInput

    plan = read_cases(SCHEMAS.encode(), "promptfoo")

    assert errors(plan) == []
    # Only the schema using the format keyword (a property called "format" is not it).
    assert dropped(plan) == [
        "line 11: assert contains-json format: promptfoo asserts the schema's `format` keywords "
        "(ajv-formats); they are kept but not asserted, as Evalgate's formats differ from ajv's"
    ]
    pair = expected(plan)["pair"]
    assert pair["is_json"]["schema"]["$schema"] == "http://json-schema.org/draft-07/schema#"
    # Draft-07 tuple items, as Ajv reads them: a third item is refused, a string second item too.
    kind = get_kind("is_json")

    def passes(output: str) -> bool:
        return kind.evaluate(GradingInput({}, pair, output), kind.validate_config({})).passed

    assert (passes('["a", 1]'), passes('["a", 1, 2]'), passes('["a", "b"]')) == (True, False, False)
