"""levenshtein, text_similarity and rouge_n: closeness to a reference, with thresholds."""

import pytest

from grading_app.graders.similarity import TEXT_METRICS, text_similarity
from grading_app.graders.treebank import rouge_n as treebank_rouge_n
from grading_app.graders.treebank import treebank_tokens
from tests.grading.grading_helpers import config_error, grade

REFERENCE = "The cat sat on the mat near the door."


def test_levenshtein_passes_within_the_distance_and_fails_beyond():
    assert grade("levenshtein", "kitten", levenshtein="sitting").passed  # 3 edits, default 5
    outcome = grade("levenshtein", "kitten", levenshtein={"value": "sitting", "threshold": 2})
    assert outcome.passed is False
    assert "edit distance 3" in outcome.rationale
    assert 0 < outcome.score < 1


def test_levenshtein_counts_case_unless_told_not_to():
    assert grade("levenshtein", "ABC", levenshtein={"value": "abc", "threshold": 0}).passed is False
    assert grade("levenshtein", "ABC", {"case_sensitive": False, "threshold": 0}, levenshtein="abc").passed


def test_levenshtein_takes_the_closest_reference():
    outcome = grade("levenshtein", "colour", {"threshold": 0}, levenshtein=["color", "colour"])
    assert outcome.passed
    assert outcome.score == 1.0


def test_levenshtein_refuses_a_negative_or_fractional_threshold():
    assert "threshold must be >= 0" in config_error("levenshtein", {"threshold": -1})
    assert "threshold has the wrong type" in config_error("levenshtein", {"threshold": 1.5})


@pytest.mark.parametrize("metric", TEXT_METRICS)
def test_every_metric_scores_identity_near_one_and_unrelated_text_low(metric):
    # METEOR's fragmentation penalty keeps even a perfect match just under 1.
    assert text_similarity(REFERENCE, REFERENCE, metric) == pytest.approx(1.0, abs=1e-3)
    assert text_similarity("Quarterly revenue grew sharply.", REFERENCE, metric) < 0.4


@pytest.mark.parametrize("metric", TEXT_METRICS)
def test_every_metric_ranks_a_near_paraphrase_above_an_unrelated_text(metric):
    near = "The cat sat on the mat by the door."
    far = "A dog ran in the park."
    assert text_similarity(near, REFERENCE, metric) > text_similarity(far, REFERENCE, metric)


def test_rouge_values_match_hand_counts():
    # 4 of 5 unigrams shared either way: P = R = F = 0.8; bigrams: 2 of 4 shared.
    assert text_similarity("a b c d e", "a b c d x", "rouge_1") == pytest.approx(0.8)
    assert text_similarity("a b c d e", "a b c d x", "rouge_2") == pytest.approx(0.75)
    assert text_similarity("a b c d e", "a b x d e", "rouge_2") == pytest.approx(0.5)


def test_text_similarity_threshold_and_metric_per_case():
    outcome = grade("text_similarity", "The cat sat on the mat.", text_similarity=REFERENCE)
    assert outcome.passed  # fuzzy_match at the default 0.5
    strict = {"value": REFERENCE, "metric": "bleu", "threshold": 0.9}
    outcome = grade("text_similarity", "The cat sat on the mat.", text_similarity=strict)
    assert outcome.passed is False
    assert outcome.rationale.startswith("bleu ")


def test_text_similarity_refuses_cosine_and_unknown_metrics():
    assert "use an embedding_similarity grader" in config_error("text_similarity", {"metric": "cosine"})
    assert "config.metric must be one of" in config_error("text_similarity", {"metric": "bertscore"})
    assert "threshold must be between 0 and 1" in config_error("text_similarity", {"threshold": 2})
    with pytest.raises(ValueError, match="metric must be one of"):
        grade("text_similarity", "x", text_similarity={"value": "x", "metric": "chrf"})


def test_rouge_n_default_is_rouge_1_at_three_quarters():
    assert grade("rouge_n", "a b c d e", rouge_n="a b c d x").passed  # 0.8
    assert grade("rouge_n", "a b c d e", rouge_n="a b x y z").passed is False  # 0.4
    outcome = grade("rouge_n", "a b c d e", rouge_n={"value": "a b x d e", "n": 2})
    assert outcome.passed is False  # 2 of 4 bigrams: 0.5
    assert outcome.rationale.startswith("ROUGE-2 0.500")


def test_rouge_n_refuses_n_out_of_range():
    assert "n must be from 1 to 5" in config_error("rouge_n", {"n": 6})


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        # What js-rouge 3.2's treeBankTokenize (promptfoo 0.121's rouge-n) gives for each.
        ("paris.", ["paris", "."]),
        ("don't go, café 東京", ["do", "n't", "go", ",", "café", "東京"]),
        ('He said "refunds take 30 days."', ["He", "said", "``", "refunds", "take", "30", "days", ".", "''"]),
        ("I cannot wait... gonna go!", ["I", "can", "not", "wait", "...", "gon", "na", "go", "!"]),
        (
            "The U.S. (mostly) charges $5 at 3:30",
            ["The", "U.S.", "(", "mostly", ")", "charges", "$", "5", "at", "3:30"],
        ),
        ("  \u00a0\n ", []),
    ],
)
def test_treebank_tokens_are_js_rouges(text, tokens):
    assert treebank_tokens(text) == tokens


def test_rouge_n_counts_punctuation_and_any_script_as_promptfoo_does():
    # rouge-score drops "." and every non-ASCII word: 1.0 and 0.0 there, not here.
    assert treebank_rouge_n("Paris.", "Paris") == pytest.approx(2 / 3)
    assert treebank_rouge_n("東京", "東京") == 1.0
    assert grade("rouge_n", "Paris.", rouge_n="Paris").passed is False  # 0.67 < 0.75, as in promptfoo
    # Clipped counts: a repeated word matches as often as the reference has it.
    assert treebank_rouge_n("the the the", "the cat") == pytest.approx(0.4)
    assert treebank_rouge_n("", "Paris") == 0.0
