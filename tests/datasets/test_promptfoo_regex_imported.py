"""promptfoo's regex assertions imported to decide as JavaScript's RegExp does (the regex
grader's ecmascript flavor): the `promptfoo/regex` suite, on answers where Python's re decides
otherwise, gets promptfoo's verdicts from an Evalgate run; promptfoo itself runs the suite and
its export where it is installed. Patterns that cannot be carried exactly are listed."""

import re

import pytest

from datasets_app.importers import read_cases
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
from tests.grading.test_run_eval import jobs_run_when_start_run_commits  # noqa: F401

pytestmark = pytest.mark.django_db

SUITE = "promptfoo/regex/promptfooconfig.yaml"
# promptfoo 0.121.20's verdict on each test, its answer echoed; and what Python's re, given
# the pattern as written, decides ("error": it refuses the pattern).
PROMPTFOO_VERDICTS = {
    "a-digit-is-an-ascii-digit": (True, False),
    "a-word-is-ascii": (False, True),
    "a-word-boundary-is-ascii": (False, True),
    "dot-stops-at-a-carriage-return": (False, True),
    "an-emoji-is-two-units": (False, True),
    "an-emoji-fills-two-dots": (True, False),
    "a-brace-without-a-count-is-text": (False, True),
    "an-unknown-escape-is-the-letter": (True, "error"),
    "a-byte-order-mark-is-a-space": (True, False),
    "a-named-group": (True, "error"),
}
ECMASCRIPT = {"flavor": "ecmascript"}


def test_the_suite_becomes_patterns_read_as_javascript_reads_them():
    plan = read(SUITE, "promptfoo")

    assert errors(plan) == [] and dropped(plan) == []
    assert expected(plan) == {
        "a-digit-is-an-ascii-digit": {"not_js_pattern": r"Order \d+"},
        "a-word-is-ascii": {"js_pattern": r"^\w+$"},
        "a-word-boundary-is-ascii": {"not_js_pattern": r"\bas\b"},
        "dot-stops-at-a-carriage-return": {"js_pattern": "one.line"},
        "an-emoji-is-two-units": {"js_pattern": "Thanks .$"},
        "an-emoji-fills-two-dots": {"js_pattern": "Thanks ..$"},
        "a-brace-without-a-count-is-text": {"js_pattern": "a{,2}"},
        "an-unknown-escape-is-the-letter": {"js_pattern": r"\a to \z"},
        "a-byte-order-mark-is-a-space": {"js_pattern": r"yes\sno"},
        "a-named-group": {"js_pattern": r"ref (?<year>\d{4})-\d+"},
    }
    assert graders(plan) == {
        "promptfoo-regex": ("regex", {"expected_field": "js_pattern", **ECMASCRIPT}, None),
        "promptfoo-not-regex": (
            "regex",
            {"expected_field": "not_js_pattern", **ECMASCRIPT, "negate": True},
            None,
        ),
    }


def test_patterns_that_cannot_be_carried_exactly_are_listed_with_file_and_line():
    plan = read("promptfoo/regex/lossy.yaml", "promptfoo")

    assert errors(plan) == []
    assert dropped(plan) == [
        "line 6: assert regex: '\\\\b(\\\\w+) \\\\1\\\\b' uses a backreference (\\1), which Evalgate cannot "
        "match exactly as JavaScript does",
        "line 12: assert regex: '(?<=(?:EUR|\\\\$) )\\\\d+' uses a lookbehind of varying width "
        "(look-behind requires fixed-width pattern), which Evalgate cannot match exactly as JavaScript does",
    ]


def test_a_pattern_javascript_refuses_is_an_error_at_its_line():
    broken = (CORPUS / SUITE).read_text().replace(r"value: ^\w+$", "value: (?i)café")
    plan = read_cases(broken.encode(), "promptfoo")

    assert errors(plan) == [
        "line 19: assert: regex '(?i)café' is not a valid JavaScript regular expression: Invalid group "
        "(at offset 1) (promptfoo fails it)"
    ]


@pytest.fixture
def imported(tmp_path):
    return import_audited_suite(SUITE, "regex", tmp_path)


def python_re_decides(expected: dict, output: str) -> bool | str:
    """The verdict of the pattern read by Python's re, as the import read it before."""
    ((key, pattern),) = expected.items()
    try:
        found = re.search(pattern, output) is not None
    except re.error:
        return "error"
    return found != key.startswith("not_")


def test_a_run_grades_each_case_as_promptfoo_decides_its_test(imported, tmp_path):
    dataset, _suite = imported
    outputs = {case.key: echoed(case) for case in Case.objects.filter(dataset=dataset)}

    decided = verdicts_of_a_run(dataset, tmp_path, outputs)

    assert {key: passed for key, (passed, _) in decided.items()} == {
        key: promptfoo for key, (promptfoo, _) in PROMPTFOO_VERDICTS.items()
    }
    # And Python's re decides each otherwise.
    before = {
        c.key: python_re_decides(c.expected, outputs[c.key]) for c in Case.objects.filter(dataset=dataset)
    }
    assert before == {key: old for key, (_, old) in PROMPTFOO_VERDICTS.items()}


def test_the_export_writes_the_same_assertions_back_and_reads_back_as_the_same_cases(imported, tmp_path):
    dataset, _suite = imported
    assert_export_round_trips(dataset, tmp_path)


@pytest.mark.skipif(not PROMPTFOO.exists(), reason="promptfoo is not installed on this machine")
def test_promptfoo_decides_the_suite_and_its_export_as_the_table_says(imported, tmp_path):
    source, exported = promptfoo_verdicts(*imported, tmp_path)

    assert source == exported == {key: promptfoo for key, (promptfoo, _) in PROMPTFOO_VERDICTS.items()}


WEIGHTED = """\
prompts: ["{{answer}}"]
tests:
  - description: weighted
    vars: {answer: "Thanks 🙏"}
    threshold: 0.5
    assert:
      - {type: regex, value: "Thanks .$"}
      - {type: contains, value: Thanks}
"""


def test_a_regex_in_a_weighted_score_is_read_as_javascript_reads_it_too():
    from grading_app.graders import get_kind
    from grading_app.graders.base import GradingInput

    plan = read_cases(WEIGHTED.encode(), "promptfoo")
    (spec,) = plan.specs
    kind = get_kind("assertion_set")
    config = kind.validate_config({})

    regex, _contains = spec.expected["assertion_set"]["assertions"]
    outcome = kind.evaluate(GradingInput(case_input={}, expected=spec.expected, output="Thanks 🙏"), config)

    assert regex["config"] == {"expected_field": "js_pattern", "flavor": "ecmascript"}
    assert (outcome.passed, outcome.score) == (True, 0.5)  # one unit after "Thanks ": the regex fails
