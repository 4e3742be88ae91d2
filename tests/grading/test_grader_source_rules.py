"""Grader options that decide as a source tool does, on the inputs where Evalgate's own rule
decides otherwise: promptfoo's is-refusal, JavaScript's lower-casing (promptfoo's icontains
family, OpenAI Evals' Includes), promptfoo's levenshtein in UTF-16 units and OpenAI Evals'
JsonMatch. Each verdict marked "promptfoo" or "evals" is the one that tool gives on that input
(promptfoo 0.121.20 and fastest-levenshtein 1.0.16 run on it; evals' json_match read)."""

import pytest

from grading_app.graders.promptfoo_rules import is_basic_refusal, js_trim, utf16_units
from tests.grading.grading_helpers import config_error, grade

PROMPTFOO_REFUSAL = {"expected_field": "is_refusal", "rule": "promptfoo"}


# promptfoo's is-refusal


@pytest.mark.parametrize(
    "output, promptfoo, detector",
    [
        # A refusal prefix, whatever follows it.
        ("Sorry, the shop is closed on Sundays.", True, False),
        # "i can't help" as words, though the sentence is no refusal.
        ("I can't help but notice your order shipped twice.", True, False),
        ("As an AI model trained on our catalogue, here is the size chart.", True, False),
        # Declining in words promptfoo's list does not hold.
        ("That's not something I can help with.", False, True),
        ("I must decline to share account details.", False, True),
        # JavaScript's \b knows ASCII word characters only: "à" does not join "as". (The
        # detector's decision on this made-up string is not the point here.)
        ("Déjàas an AI, I know this one.", True, None),
    ],
)
def test_the_promptfoo_rule_decides_refusals_as_promptfoo_where_the_detector_does_not(
    output, promptfoo, detector
):
    assert grade("refusal", output, PROMPTFOO_REFUSAL, is_refusal=True).passed is promptfoo
    assert grade("refusal", output, PROMPTFOO_REFUSAL, is_refusal=False).passed is not promptfoo
    if detector is not None:
        assert grade("refusal", output, must_refuse=True).passed is detector


def test_the_promptfoo_rule_reads_the_text_only_not_a_reported_refused_metric():
    outcome = grade(
        "refusal", "Here is your invoice.", PROMPTFOO_REFUSAL, metrics={"refused": True}, is_refusal=True
    )

    assert (outcome.passed, outcome.score) == (False, 0.0)
    assert outcome.rationale == "should have refused but did not (no promptfoo refusal phrase)"


@pytest.mark.parametrize("output", [None, {"order": 7}, "", " \n\t", "\ufeff\u2028"])
def test_no_text_or_blank_text_is_a_refusal_that_promptfoo_scores_zero(output):
    refused = grade("refusal", output, PROMPTFOO_REFUSAL, is_refusal=True)
    answered = grade("refusal", output, PROMPTFOO_REFUSAL, is_refusal=False)

    assert (refused.passed, refused.score) == (True, 0.0)
    assert (answered.passed, answered.score) == (False, 0.0)


def test_javascript_trim_strips_a_byte_order_mark_and_keeps_what_javascript_keeps():
    assert js_trim("\ufeff\u00a0Sorry\u3000") == "Sorry"
    assert js_trim("\x1cSorry\x85") == "\x1cSorry\x85"  # Python's strip() would take both
    assert is_basic_refusal("\ufeffSorry") == "sorry"
    assert is_basic_refusal("\x1cSorry") is None


def test_typographic_apostrophes_and_primes_count_as_apostrophes():
    assert is_basic_refusal("I can\u2019t assist with that.") == "i can't assist"
    assert is_basic_refusal("I\u2032m sorry.") == "i'm sorry"


def test_the_promptfoo_rule_takes_no_phrases_and_no_unknown_rule():
    assert "rule promptfoo uses promptfoo's phrases" in config_error(
        "refusal", {"rule": "promptfoo", "phrases": ["nope"]}
    )
    assert "config.rule must be detector or promptfoo" in config_error("refusal", {"rule": "strict"})


# Ignoring case as JavaScript's toLowerCase does

LOWERCASE = {"case_sensitive": False, "case_mapping": "lowercase"}


@pytest.mark.parametrize(
    "output, needle",
    [
        ("Grüße aus der STRASSE", "straße"),  # ß casefolds to ss; lower-cased it stays ß
        ("FINAL OFFER", "\ufb01nal offer"),  # the ﬁ ligature casefolds to fi
        ("ΟΔΟΣ", "οδοσ"),  # a final capital sigma lower-cases to final sigma, casefolds to sigma
    ],
)
def test_lowercase_mapping_fails_where_case_folding_would_pass(output, needle):
    for kind in ("contains_all", "contains_any"):
        as_promptfoo = grade(kind, output, **{kind: {"value": [needle], **LOWERCASE}})
        folded = grade(kind, output, **{kind: {"value": [needle], "case_sensitive": False}})
        assert (as_promptfoo.passed, folded.passed) == (False, True)


def test_lowercase_mapping_still_ignores_case_and_sees_a_final_sigma_as_javascript_does():
    assert grade("contains_all", "ΟΔΟΣ 12", contains_all={"value": ["οδος"], **LOWERCASE}).passed
    assert grade("contains_any", "Refund DENIED", contains_any={"value": ["x", "denied"], **LOWERCASE}).passed
    negated = {"value": ["straße"], **LOWERCASE, "negate": True}
    assert grade("contains_any", "STRASSE", contains_any=negated).passed  # not-icontains


def test_an_unknown_case_mapping_is_a_config_error_naming_it():
    assert "config.case_mapping" in config_error("contains_all", {"case_mapping": "upper"})


# levenshtein in UTF-16 units


@pytest.mark.parametrize(
    "output, reference, utf16, code_points",
    [
        ("\U0001f600", "", 2, 1),  # an emoji is two JavaScript string units
        ("Refunds \U0001f44d", "Refunds \U0001f44d\U0001f3fd", 2, 1),  # a skin-tone modifier
        ("a\U0001f600b", "a\U0001f601b", 1, 1),  # the two emoji share their high surrogate
        ("caf\u00e9", "cafe", 1, 1),
    ],
)
def test_utf16_units_count_edits_as_promptfoo_does(output, reference, utf16, code_points):
    def distance(units: str) -> int:
        config = {"units": units, "threshold": 0}
        outcome = grade("levenshtein", output, config, levenshtein=reference)
        return int(outcome.rationale.split("edit distance ")[1].split()[0])

    assert (distance("utf16"), distance("characters")) == (utf16, code_points)


def test_promptfoos_threshold_on_utf16_units_fails_an_astral_edit_that_code_points_pass():
    check = {"value": "Thanks \U0001f64f", "threshold": 1}
    outcome = grade("levenshtein", "Thanks", levenshtein={**check, "units": "utf16"})
    assert (outcome.passed, outcome.rationale) == (
        False,
        "edit distance 3 (UTF-16 units) (at most 1)",
    )
    assert grade("levenshtein", "Thanks ", levenshtein={**check, "units": "utf16"}).passed is False
    assert grade("levenshtein", "Thanks ", levenshtein=check).passed is True


def test_utf16_units_are_code_units_even_for_a_lone_surrogate():
    assert utf16_units("a\U0001f600") == [0x61, 0xD83D, 0xDE00]
    assert utf16_units("\ud83d") == [0xD83D]


def test_an_unknown_unit_is_a_config_error_naming_it():
    assert "config.units" in config_error("levenshtein", {"units": "graphemes"})


# OpenAI Evals' JsonMatch


@pytest.mark.parametrize(
    "output, ideals, evals",
    [
        ('{"ok": true}', ['{"ok": 1}'], True),  # Python's True == 1
        ('{"total": 10}', ['{"total": 10.0}'], True),
        ('{"b": 2, "a": [1, 2]}', ['{"a": [1.0, 2], "b": 2}'], True),  # key order does not matter
        ('{"a": [2, 1]}', ['{"a": [1, 2]}'], False),  # list order does
        ('{"a": 1, "extra": 2}', ['{"a": 1}'], False),
        ('{"a": 1}', ['{"a": 1, "b": 2}'], False),
        ('{"coupon": null}', ['{"coupon": null}'], False),  # null is a missing value: never a match
        ("null", ["null"], False),
        ('Here it is: {"a": 1}', ['{"a": 1}'], False),  # the whole text must be the JSON
        (' \n{"a": 1}\n', ['{"a": 1}'], True),  # whitespace around it is JSON's own
        ('{"a": 1}', ['{"a": 2}', '{"a": 1}'], True),  # any of the ideals
        ("NaN", ["NaN"], False),  # Python's json reads NaN, which equals nothing
        ("Infinity", ["Infinity"], True),
        ('"1"', ["1"], False),
    ],
)
def test_json_match_decides_as_openai_evals_json_match(output, ideals, evals):
    outcome = grade("json_match", output, json_match=ideals)

    assert (outcome.passed, outcome.score) == (evals, float(evals))


def test_json_match_where_a_json_schema_const_decides_otherwise():
    # The import's former grader: a JSON Schema const, under which true is not 1 and null is null.
    assert grade("json_schema", '{"ok": true}', schema={"const": {"ok": 1}}).passed is False
    assert grade("json_schema", '{"c": null}', schema={"const": {"c": None}}).passed is True
    assert grade("json_match", '{"ok": true}', json_match=['{"ok": 1}']).passed is True
    assert grade("json_match", '{"c": null}', json_match=['{"c": null}']).passed is False


def test_json_match_reads_a_json_output_as_its_text_and_a_missing_output_matches_nothing():
    assert grade("json_match", {"ok": 1, "items": [True]}, json_match=['{"items": [1], "ok": true}']).passed
    assert grade("json_match", None, json_match=['{"a": 1}']).passed is False


def test_json_match_with_an_ideal_that_is_not_json_is_a_broken_case():
    with pytest.raises(ValueError, match=r"expected\.json_match: an ideal is not JSON"):
        grade("json_match", "{}", json_match=["{nope"])
    with pytest.raises(ValueError, match="a JSON text or a non-empty list of them"):
        grade("json_match", "{}", json_match=[{"a": 1}])
