"""numeric, token_f1 and fuzzy_match: the output compared with a reference answer by value (no
database)."""

import pytest

from grading_app.graders import get_kind
from grading_app.graders.answers import answer_tokens, evals_normalize, first_number, token_f1
from grading_app.graders.base import GradingInput
from tests.grading.grading_helpers import config_error, grade


def test_answer_kinds_are_registered_as_correctness():
    assert get_kind("numeric").dimension == "correctness"
    assert get_kind("token_f1").dimension == "correctness"


# Reading numbers from text


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("The total is 1,234.5 units", 1234.5),
        ("-3 degrees", -3.0),
        ("It costs $12.50.", 12.5),
        ("Growth was 42%", 42.0),
        ("a refund of -$5", -5.0),
        ("\u22124 (typographic minus)", -4.0),
        ("about .5 litres", 0.5),
        ("roughly 1.5e-3 m", 0.0015),
        ("10,000,000 rows", 10_000_000.0),
        ("The answer is 42.", 42.0),
    ],
)
def test_first_number_reads_common_notations(text, number):
    assert first_number(text) == number


def test_first_number_takes_the_first_of_several():
    assert first_number("between 3 and 5") == 3.0


def test_first_number_does_not_read_a_hyphen_after_a_word_as_a_minus():
    assert first_number("COVID-19 cases") == 19.0


def test_first_number_skips_digits_glued_to_a_word():
    assert first_number("model v2 answered 7") == 7.0


def test_first_number_is_none_without_digits():
    assert first_number("forty-two") is None


# numeric


def test_numeric_passes_the_same_number_in_prose():
    outcome = grade("numeric", "The refund comes to $1,234.50.", number=1234.5)
    assert outcome.passed is True
    assert outcome.score == 1.0


def test_numeric_fails_a_different_number_and_says_both():
    outcome = grade("numeric", "It is 12", number=13)
    assert outcome.passed is False
    assert outcome.score == 0.0
    assert outcome.rationale == "got 12, expected 13"


def test_numeric_fails_when_the_output_has_no_number():
    outcome = grade("numeric", "I'd rather not say", number=13)
    assert outcome.passed is False
    assert outcome.rationale == "no number in the output"


def test_numeric_does_not_apply_without_an_expected_number():
    assert grade("numeric", "12", answer="12") is None


def test_numeric_uses_the_case_tolerance():
    assert grade("numeric", "10.4", number=10, tolerance=0.5).passed is True
    assert grade("numeric", "10.6", number=10, tolerance=0.5).passed is False


def test_numeric_tolerance_bound_is_inclusive_despite_float_noise():
    # 1.1 - 1.0 is 0.10000000000000009 in binary floating point.
    assert grade("numeric", "1.1", number=1.0, tolerance=0.1).passed is True


def test_numeric_uses_the_configured_absolute_tolerance():
    assert grade("numeric", "10.4", {"tolerance": 0.5}, number=10).passed is True
    assert grade("numeric", "10.4", number=10).passed is False


def test_numeric_case_tolerance_wins_over_the_configured_one():
    assert grade("numeric", "10.4", {"tolerance": 1}, number=10, tolerance=0.1).passed is False


def test_numeric_relative_tolerance_scales_with_the_answer():
    config = {"relative_tolerance": 0.01}
    assert grade("numeric", "1009", config, number=1000).passed is True
    assert grade("numeric", "1011", config, number=1000).passed is False


def test_numeric_reads_negatives_and_percentages():
    assert grade("numeric", "-3", number=-3).passed is True
    assert grade("numeric", "42%", number=42).passed is True
    assert grade("numeric", "3", number=-3).passed is False


def test_numeric_takes_a_json_number_output_as_the_answer():
    assert grade("numeric", 12.5, number=12.5).passed is True
    assert grade("numeric", 12, number=12.5).passed is False


def test_numeric_accepts_an_expected_number_written_as_text():
    assert grade("numeric", "1234.5", number="1,234.5").passed is True


def test_numeric_reads_the_configured_expected_field():
    assert grade("numeric", "7 days", {"expected_field": "days"}, days=7).passed is True


def test_numeric_expected_number_that_is_not_a_number_raises():
    with pytest.raises(ValueError, match=r"expected\.number"):
        grade("numeric", "12", number="twelve")
    with pytest.raises(ValueError, match=r"expected\.number"):
        grade("numeric", "1", number=True)


def test_numeric_negative_case_tolerance_raises():
    with pytest.raises(ValueError, match=r"expected\.tolerance"):
        grade("numeric", "12", number=12, tolerance=-1)


def test_numeric_negative_configured_tolerance_is_a_config_error_naming_it():
    assert "config.tolerance" in config_error("numeric", {"tolerance": -0.5})
    assert "config.relative_tolerance" in config_error("numeric", {"relative_tolerance": -1})


def test_numeric_configured_tolerance_must_be_a_number():
    assert "tolerance" in config_error("numeric", {"tolerance": "0.5"})
    assert "relative_tolerance" in config_error("numeric", {"relative_tolerance": True})


# token_f1


def test_answer_tokens_drop_case_punctuation_and_articles():
    assert answer_tokens("The Eiffel Tower, in an instant!") == ["eiffel", "tower", "in", "instant"]
    assert answer_tokens("\u201cRome\u201d \u2014 a city") == ["rome", "city"]


def test_token_f1_is_the_harmonic_mean_of_token_precision_and_recall():
    # 1 shared token: precision 1/2, recall 1/1.
    assert token_f1("Paris France", "Paris") == pytest.approx(2 / 3)
    assert token_f1("", "") == 1.0
    assert token_f1("", "Paris") == 0.0


def test_token_f1_passes_an_answer_equal_up_to_articles_and_punctuation():
    outcome = grade("token_f1", "The Eiffel Tower.", answer="Eiffel tower")
    assert outcome.passed is True
    assert outcome.score == 1.0


def test_token_f1_scores_partial_overlap_and_passes_at_the_default_threshold():
    outcome = grade("token_f1", "in Paris, France", answer="Paris")
    assert outcome.score == pytest.approx(0.5)
    assert outcome.passed is True
    assert "0.50" in outcome.rationale


def test_token_f1_fails_below_the_threshold():
    outcome = grade("token_f1", "It is in the city of Lyon", answer="Paris")
    assert outcome.passed is False
    assert outcome.score == 0.0


def test_token_f1_uses_the_configured_threshold():
    assert grade("token_f1", "in Paris, France", {"threshold": 0.8}, answer="Paris").passed is False


def test_token_f1_takes_the_best_of_several_references():
    outcome = grade("token_f1", "Big Apple", answer=["New York City", "the Big Apple"])
    assert outcome.score == 1.0
    assert "'the Big Apple'" in outcome.rationale


def test_token_f1_reads_a_numeric_reference_as_text():
    assert grade("token_f1", "1969", answer=1969).passed is True


def test_token_f1_fails_a_missing_output():
    outcome = grade("token_f1", None, answer="Paris")
    assert outcome.passed is False
    assert outcome.score == 0.0


def test_token_f1_does_not_apply_without_a_reference():
    assert grade("token_f1", "Paris", number=1) is None
    assert grade("token_f1", "Paris", answer=[]) is None


def test_token_f1_reference_of_the_wrong_shape_raises():
    with pytest.raises(ValueError, match=r"expected\.answer"):
        grade("token_f1", "Paris", answer={"city": "Paris"})


def test_token_f1_threshold_outside_zero_to_one_is_a_config_error_naming_it():
    assert "config.threshold" in config_error("token_f1", {"threshold": 1.5})


def test_token_f1_threshold_must_be_a_number():
    assert "threshold" in config_error("token_f1", {"threshold": "high"})


# fuzzy_match (OpenAI Evals' FuzzyMatch: its accuracy is the pass, its f1_score the score)


@pytest.mark.parametrize(
    ("output", "ideal", "passed", "score"),
    [
        # The cases of openai/evals' own fuzzy_match_test.py, metric for metric.
        ("world", "world", True, 1.0),
        ("world", "foo", False, 0.0),
        ("world", ["some foo world", "dummy"], True, 0.5),
        # Containment either way, after lower-casing and dropping punctuation and articles.
        ("The answer is B. 1798", "b 1798", True, pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))),
        ("1798", "The treaty was signed in 1798.", True, pytest.approx(2 * 1 * (1 / 5) / (1 + 1 / 5))),
        # Characters, not words: an ideal "B" is inside "about" (OpenAI's eval passes it too).
        ("About Pro", "B", True, 0.0),
        ("Basic", ["Pro", "Premium"], False, 0.0),
        # Two empty texts match; an empty output never matches a non-empty ideal. F1 is 0 for both.
        ("", "", True, 0.0),
        ("...", "the", True, 0.0),
        ("", "Pro", False, 0.0),
    ],
)
def test_fuzzy_match_passes_and_scores_as_openai_evals_fuzzy_match(output, ideal, passed, score):
    outcome = grade("fuzzy_match", output, fuzzy_match=ideal)

    assert (outcome.passed, outcome.score) == (passed, score)


def test_fuzzy_match_lower_cases_as_python_lower_and_strips_only_ascii_punctuation():
    # str.lower keeps "ß" (casefold would make it "ss"); a curly apostrophe is not ASCII punctuation.
    assert evals_normalize("STRASSE  Straße, the  \u201cEnd\u201d!") == "strasse straße \u201cend\u201d"
    assert grade("fuzzy_match", "Strasse", fuzzy_match="Straße").passed is False
    assert grade("fuzzy_match", "it\u2019s", fuzzy_match="its").passed is False
    assert grade("fuzzy_match", "it's", fuzzy_match="its").passed is True


def test_fuzzy_match_names_the_ideal_it_matched_and_those_it_did_not():
    assert "'Pro'" in grade("fuzzy_match", "The Pro plan.", fuzzy_match=["Gold", "Pro"]).rationale
    assert "'Gold' or 'Silver'" in grade("fuzzy_match", "Basic", fuzzy_match=["Gold", "Silver"]).rationale


def test_fuzzy_match_does_not_apply_without_its_key_and_reads_another_key_when_told():
    assert grade("fuzzy_match", "Pro", answer="Pro") is None
    assert grade("fuzzy_match", "Pro", {"expected_field": "ideal"}, ideal="pro").passed is True


@pytest.mark.parametrize("ideal", [[], 1798, ["B", 2], {"value": "B"}])
def test_fuzzy_match_refuses_an_ideal_openai_evals_could_not_grade(ideal):
    with pytest.raises(ValueError, match=r"expected\.fuzzy_match must be a string or a non-empty list"):
        grade("fuzzy_match", "B", fuzzy_match=ideal)


def test_fuzzy_match_config_takes_only_its_field_and_negate():
    assert "threshold" in config_error("fuzzy_match", {"threshold": 0.5})
    assert get_kind("fuzzy_match").config_schema()["properties"].keys() == {"expected_field", "negate"}
    kind = get_kind("fuzzy_match")
    negated = kind.evaluate(
        GradingInput({}, {"fuzzy_match": "Pro"}, "Basic"), kind.validate_config({"negate": True})
    )
    assert negated.passed is True
