"""promptfoo's weighted pass rule carried: the `weighted` corpus suite (tests whose verdict
changes with a test threshold, weights, weight 0, assert-sets with their own threshold and
weight, a CSV __threshold) is imported, graded through a run, exported, and run by promptfoo
itself with its echo provider: every test gets the same verdict and the same score."""

import json

import pytest
import yaml
from django.utils.text import slugify

from datasets_app.models import Case
from grading_app.models import Grade
from tests.datasets.corpus_helpers import (
    PROMPTFOO,
    dropped,
    errors,
    expected,
    export_promptfoo,
    import_audited_suite,
    promptfoo_results,
    read,
    read_back,
)
from tests.grading.test_run_eval import jobs_run_when_start_run_commits, run_eval, write_jsonl  # noqa: F401

pytestmark = pytest.mark.django_db

SUITE = "promptfoo/weighted/promptfooconfig.yaml"
HAS_30_DAYS = {"kind": "contains_all", "expected": {"contains_all": ["30 days"]}, "binary": True}
HAS_RECEIPT = {"kind": "contains_all", "expected": {"contains_all": ["receipt"]}, "binary": True}
# What promptfoo decides for each test of the suite on the answer it echoes (verdict, score).
VERDICTS = {
    "threshold-reached-by-half": (True, 0.5),
    "same-checks-without-a-threshold": (False, 0.5),
    "a-heavier-failing-check-tips-it": (False, 1 / 3),
    "weight-zero-never-fails-a-test": (True, 1.0),
    "weight-zero-counts-nothing-in-the-score": (True, 1.0),
    "no-weight-at-all-scores-zero": (False, 0.0),
    "a-set-reaches-its-own-threshold": (True, 0.75),
    "a-set-misses-its-own-threshold": (False, 0.75),
    "a-failing-set-of-weight-zero-still-fails": (False, 1.0),
    "a-weighted-set-inside-a-thresholded-test": (False, 0.625),
    "an-edit-distance-scores-one-or-zero": (False, 0.5),
    "a-negated-check-and-json-in-the-score": (True, 2 / 3),
    # ROUGE-1 on treebank tokens: 4 of 5 ("." counts) and 4 of 6 shared, F 8/11.
    "a-rouge-score-counts-in-the-mean": (False, (1 + 8 / 11) / 2),
    "csv-row-with-a-threshold": (True, 0.5),
    "csv-row-without-one": (False, 0.5),
}


def test_thresholds_weights_and_sets_become_one_assertion_set_where_they_change_the_verdict():
    plan = read(SUITE, "promptfoo")

    assert errors(plan) == [] and dropped(plan) == []
    assert sorted(expected(plan)) == sorted(VERDICTS)
    cases = expected(plan)
    # Without a threshold, weight 0 or a set threshold, every check must pass: checks of their own.
    assert cases["same-checks-without-a-threshold"] == {
        "contains_all": [{"value": ["30 days"]}, {"value": ["receipt"]}]
    }
    assert cases["a-heavier-failing-check-tips-it"] == {
        "assertion_set": {
            "threshold": 0.6,
            "assertions": [
                {"kind": "contains_all", "expected": {"contains_all": ["30 days"]}, "binary": True},
                {
                    "kind": "contains_all",
                    "expected": {"contains_all": ["receipt"]},
                    "weight": 2,
                    "binary": True,
                },
            ],
        }
    }
    assert cases["a-weighted-set-inside-a-thresholded-test"]["assertion_set"]["assertions"][1] == {
        "threshold": 0.9,
        "assertions": [
            {"kind": "contains_all", "expected": {"contains_all": ["30 days"]}, "binary": True},
            {"kind": "contains_all", "expected": {"contains_all": ["receipt"]}, "binary": True},
        ],
        "weight": 3,
    }
    tags = {s.key: s.tags for s in plan.specs}
    assert (tags["weight-zero-never-fails-a-test"], tags["a-set-misses-its-own-threshold"]) == (
        ["metric:receipts"],
        ["metric:policy"],
    )


@pytest.fixture
def imported(tmp_path):
    return import_audited_suite(SUITE, "weighted", tmp_path)


def verdicts_of_a_run(dataset, tmp_path, outputs: dict[str, str]) -> dict[str, tuple[bool, float]]:
    """Each case's verdict in an Evalgate run (all its grades pass) and its weighted score (the
    assertion set's, else the mean of its grades)."""
    path = write_jsonl(tmp_path / "outputs.jsonl", [{"case": k, "output": v} for k, v in outputs.items()])
    run_eval(dataset.slug, "--outputs", str(path), "--candidate", "echo")
    found: dict[str, list[Grade]] = {}
    for grade in Grade.objects.select_related("case_result__case", "grader"):
        found.setdefault(grade.case_result.case.key, []).append(grade)
    decided = {}
    for key, grades in found.items():
        weighted = [g.score for g in grades if g.grader.kind == "assertion_set"]
        score = weighted[0] if weighted else sum(g.score for g in grades) / len(grades)
        decided[key] = (all(g.passed for g in grades), score)
    return decided


def echoed(case: Case) -> str:
    return case.input["messages"][0]["content"]


def test_a_run_grades_each_case_as_promptfoo_decides_its_test(imported, tmp_path):
    dataset, _suite = imported
    outputs = {case.key: echoed(case) for case in Case.objects.filter(dataset=dataset)}

    decided = verdicts_of_a_run(dataset, tmp_path, outputs)

    assert {key: passed for key, (passed, _) in decided.items()} == {k: v for k, (v, _) in VERDICTS.items()}
    assert {key: pytest.approx(score) for key, (_, score) in decided.items()} == {
        k: s for k, (_, s) in VERDICTS.items()
    }


@pytest.mark.skipif(not PROMPTFOO.exists(), reason="promptfoo is not installed on this machine")
def test_promptfoo_decides_the_suite_and_its_evalgate_export_the_same_way(imported, tmp_path):
    dataset, suite = imported
    notes: list[str] = []
    export = export_promptfoo(dataset, tmp_path, notes)

    source = {
        slugify(r["testCase"]["description"]): r for r in promptfoo_results(suite / "promptfooconfig.yaml")
    }
    exported = {r["testCase"]["metadata"]["key"]: r for r in promptfoo_results(export)}

    assert notes == []
    for results in (source, exported):
        assert {k: r["success"] for k, r in results.items()} == {k: v for k, (v, _) in VERDICTS.items()}
        assert {k: r["score"] for k, r in results.items()} == {
            k: pytest.approx(s) for k, (_, s) in VERDICTS.items()
        }
    # promptfoo answered each test with the text Evalgate's case sends.
    assert {k: r["response"]["output"] for k, r in exported.items()} == {
        c.key: echoed(c) for c in Case.objects.filter(dataset=dataset)
    }
    # And the export reads back as the same cases.
    back = read_back(export)
    assert back == {c.key: c.expected for c in Case.objects.filter(dataset=dataset)}


JUDGED = """\
prompts: ["{{q}}"]
tests:
  - description: scored
    vars: {q: Hi}
    threshold: 0.5
    assert:
      - {type: icontains, value: hello}
      - {type: llm-rubric, value: Is friendly}
      - {type: latency, threshold: 500}
  - description: all must pass
    vars: {q: Hi}
    assert:
      - {type: icontains, value: hello, weight: 0}
      - {type: llm-rubric, value: Is friendly}
      - {type: llm-rubric, value: Is brief, weight: 0}
"""


ICONTAINS_HELLO = {"value": ["hello"], "case_sensitive": False, "case_mapping": "lowercase"}


def test_a_judge_or_a_budget_inside_a_weighted_score_is_listed_as_not_carried():
    from datasets_app.importers import read_cases

    plan = read_cases(JUDGED.encode(), "promptfoo")

    assert errors(plan) == []
    scored, all_pass = plan.specs
    assert scored.expected == {
        "assertion_set": {
            "threshold": 0.5,
            "assertions": [
                {"kind": "contains_all", "expected": {"contains_all": ICONTAINS_HELLO}, "binary": True}
            ],
        }
    }
    # Where every check must pass anyway, a judge stays a judge of its own (the same verdict).
    assert all_pass.expected == {
        "assertion_set": {
            "assertions": [
                {
                    "kind": "contains_all",
                    "expected": {"contains_all": ICONTAINS_HELLO},
                    "weight": 0,
                    "binary": True,
                }
            ]
        },
        "llm_rubric": "Is friendly",
    }
    assert dropped(plan) == [
        "line 8: assert llm-rubric: inside a weighted score (a threshold): a judge decides on its own "
        "signed-off rubric version, never part of a case's score; the threshold is carried over the other "
        "assertions",
        "line 9: assert latency: inside a weighted score (a threshold): a latency or cost budget is a gate "
        "rule over the run, never part of a case's score; the threshold is carried over the other assertions",
        "line 5: threshold: the weighted score is taken over the assertions carried: the 2 not carried (each "
        "listed with its line) are left out of it",
        "line 15: assert llm-rubric: weight 0: promptfoo reports it but never fails the test on it, and a "
        "check that decides nothing is not carried",
    ]


@pytest.mark.parametrize(
    ("test", "error"),
    [
        ({"threshold": "0.5"}, "threshold: threshold must be a number, not a string (promptfoo would ignore"),
        (
            {"assert": [{"type": "contains", "value": "a", "weight": "2"}]},
            "contains: weight must be a number",
        ),
        (
            {"assert": [{"type": "assert-set", "threshold": "high", "assert": []}]},
            "assert-set: threshold must be a number, not a string",
        ),
        (
            {"assert": [{"type": "assert-set", "assert": [{"type": "assert-set", "assert": []}]}]},
            "an assert-set inside an assert-set: promptfoo cannot run it",
        ),
    ],
)
def test_a_threshold_or_weight_promptfoo_would_not_read_as_a_number_is_refused(test, error):
    from datasets_app.importers import read_cases

    config = {"prompts": ["{{q}}"], "tests": [{"vars": {"q": "x"}, **test}]}
    plan = read_cases(json.dumps(config, indent=1).encode(), "promptfoo")

    assert any(error in str(e) for e in plan.errors), errors(plan)  # so nothing is imported


DEFAULTED = """\
prompts: ["{{q}}"]
defaultTest:
  threshold: 0.5
  assert:
    - {type: icontains, value: thanks}
tests:
  - description: takes the default
    vars: {q: Hi}
    assert:
      - {type: javascript, value: output.length < 9}
  - description: its own wins
    vars: {q: Hi}
    threshold: 1
    assert:
      - {type: contains, value: Hi}
"""


def test_a_default_threshold_applies_to_every_test_without_one_and_is_named_where_it_is_written():
    from datasets_app.importers import read_cases

    plan = read_cases(DEFAULTED.encode(), "promptfoo")

    default, own = plan.specs
    icontains = {"value": ["thanks"], "case_sensitive": False, "case_mapping": "lowercase"}
    thanks = {"kind": "contains_all", "expected": {"contains_all": icontains}, "binary": True}
    assert default.expected == {"assertion_set": {"threshold": 0.5, "assertions": [thanks]}}
    hi = {"kind": "contains_all", "expected": {"contains_all": ["Hi"]}, "binary": True}
    assert own.expected == {"assertion_set": {"threshold": 1, "assertions": [thanks, hi]}}
    assert dropped(plan)[1] == (
        "line 3: threshold: the weighted score is taken over the assertions carried: the 1 not carried "
        "(each listed with its line) are left out of it"
    )
    broken = read_cases(DEFAULTED.replace("threshold: 0.5", "threshold: half").encode(), "promptfoo")
    assert errors(broken)[0] == (
        "line 3: defaultTest.threshold: threshold must be a number, not a string (promptfoo would ignore it)"
    )


def test_a_weighted_set_beside_other_checks_exports_as_an_assert_set_so_they_still_must_pass():
    from datasets_app.importers import export_promptfoo

    case = {
        "key": "mixed",
        "input": {"messages": [{"role": "user", "content": "Refund?"}]},
        "expected": {
            "pattern": "days",
            "answer": "30 days",
            "assertion_set": {"threshold": 0.5, "assertions": [HAS_30_DAYS, {**HAS_RECEIPT, "weight": 2}]},
        },
    }
    notes: list[str] = []

    text, notes = export_promptfoo([case])

    (test,) = yaml.safe_load(text)["tests"]
    assert "threshold" not in test
    assert test["assert"] == [
        {"type": "regex", "value": "days"},
        {
            "type": "assert-set",
            "assert": [
                {"type": "contains", "value": "30 days"},
                {"type": "contains", "value": "receipt", "weight": 2},
            ],
            "threshold": 0.5,
        },
    ]
    assert notes == [
        "case mixed: expected.answer has no promptfoo assertion",
        "case mixed: expected.pattern is a Python regular expression; promptfoo matches it as "
        "JavaScript's RegExp, which decides some patterns otherwise",
    ]


def test_an_export_says_where_promptfoo_would_score_a_member_otherwise():
    from datasets_app.importers import export_promptfoo

    scored = {"kind": "contains_all", "expected": {"contains_all": "receipt"}}  # its own score, not 1/0
    case = {"key": "c", "input": {"messages": []}, "expected": {"assertion_set": {"assertions": [scored]}}}

    _text, notes = export_promptfoo([case])

    assert notes == [
        "case c: expected.assertion_set.assertions[0]: promptfoo scores contains otherwise than this set does"
    ]
