"""embedding_similarity through the local OpenAI-compatible server's /v1/embeddings."""

import math

import pytest

from grading_app.graders.embeddings import cosine
from tests.factories import make_endpoint
from tests.fake_openai import embedding_for
from tests.grading.grading_helpers import config_error, grade

pytestmark = pytest.mark.django_db

REFERENCE = "Refunds are possible within 30 days of purchase."


def config(endpoint, **extra):
    return {"endpoint": endpoint.name, "model": "embed-small", **extra}


def test_fake_embeddings_are_deterministic_unit_vectors_close_for_shared_words():
    vector = embedding_for(REFERENCE)
    assert vector == embedding_for(REFERENCE)
    assert math.isclose(sum(x * x for x in vector), 1.0)
    near = cosine(embedding_for("Refunds are possible within 30 days."), vector)
    far = cosine(embedding_for("Our office opens at nine on Mondays."), vector)
    assert near > 0.8 > far


def test_embedding_similarity_passes_a_paraphrase_and_fails_an_unrelated_answer(fake_openai):
    endpoint = make_endpoint(fake_openai.base_url)
    outcome = grade(
        "embedding_similarity", "Refunds are possible within 30 days.", config(endpoint), similar=REFERENCE
    )
    assert outcome.passed
    assert outcome.score == pytest.approx(
        cosine(embedding_for("Refunds are possible within 30 days."), embedding_for(REFERENCE))
    )
    outcome = grade("embedding_similarity", "Our office opens at nine.", config(endpoint), similar=REFERENCE)
    assert outcome.passed is False
    assert "cosine" in outcome.rationale
    # One call per case: the output and the reference embedded together.
    bodies = [r["body"] for r in fake_openai.requests]
    assert bodies[0] == {
        "model": "embed-small",
        "input": ["Refunds are possible within 30 days.", REFERENCE],
        "encoding_format": "float",
    }
    assert [r["path"] for r in fake_openai.requests] == ["/v1/embeddings", "/v1/embeddings"]


def test_embedding_similarity_threshold_per_case_and_closest_reference(fake_openai):
    endpoint = make_endpoint(fake_openai.base_url)
    expected = {"value": ["Office hours are nine to five.", REFERENCE], "threshold": 0.99}
    outcome = grade("embedding_similarity", REFERENCE, config(endpoint), similar=expected)
    assert outcome.passed
    assert "against 'Refunds are possible" in outcome.rationale


def test_embedding_similarity_can_be_negated(fake_openai):
    from grading_app.graders import get_kind
    from grading_app.graders.base import GradingInput

    endpoint = make_endpoint(fake_openai.base_url)
    kind = get_kind("embedding_similarity")
    item = GradingInput(case_input={}, expected={"similar": REFERENCE}, output=REFERENCE)
    outcome = kind.evaluate(item, kind.validate_config(config(endpoint, negate=True)))
    assert outcome.passed is False


def test_an_endpoint_that_keeps_failing_is_an_error_never_a_pass(fake_openai):
    endpoint = make_endpoint(fake_openai.base_url, max_retries=1)
    fake_openai.faults(rate=1.0, kinds=("500",))
    from grading_app.llm import EmbeddingError

    with pytest.raises(EmbeddingError, match="InternalServerError"):
        grade("embedding_similarity", "x", config(endpoint), similar=REFERENCE)
    assert len(fake_openai.requests) == 2  # the first try and one retry


def test_an_unknown_endpoint_is_a_grade_error(fake_openai):
    with pytest.raises(ValueError, match="no endpoint named 'nowhere'"):
        grade("embedding_similarity", "x", {"endpoint": "nowhere", "model": "m"}, similar=REFERENCE)


def test_embedding_similarity_needs_an_endpoint_and_model():
    assert "config.endpoint is required" in config_error("embedding_similarity", {"model": "m"})
    assert "config.model is required" in config_error("embedding_similarity", {"endpoint": "e"})
    assert "between -1 and 1" in config_error(
        "embedding_similarity", {"endpoint": "e", "model": "m", "threshold": 3}
    )


def test_a_case_without_the_key_costs_no_call(fake_openai):
    endpoint = make_endpoint(fake_openai.base_url)
    assert grade("embedding_similarity", "x", config(endpoint), answer="x") is None
    assert fake_openai.requests == []


def test_injected_faults_are_retried_then_answered(fake_openai):
    endpoint = make_endpoint(fake_openai.base_url, max_retries=2)
    fake_openai.faults(rate=0.5, kinds=("429",), seed=3)
    outcome = grade("embedding_similarity", REFERENCE, config(endpoint), similar=REFERENCE)
    assert outcome.passed
    injected = [r["injected"] for r in fake_openai.requests]
    assert injected[-1] is False
    assert True in injected  # the seed injects a 429 before the answer


def test_asking_whether_it_applies_costs_no_call(fake_openai):
    from grading_app.graders import get_kind
    from grading_app.graders.base import GradingInput

    endpoint = make_endpoint(fake_openai.base_url)
    kind = get_kind("embedding_similarity")
    settings = kind.validate_config(config(endpoint))
    assert kind.applies(GradingInput({}, {"similar": REFERENCE}, ""), settings) is True
    assert kind.applies(GradingInput({}, {"answer": REFERENCE}, ""), settings) is False
    assert fake_openai.requests == []


def test_dot_product_and_euclidean_distance_are_promptfoos_similar_dot_and_similar_euclidean(fake_openai):
    endpoint = make_endpoint(fake_openai.base_url)
    answer, vector = "Refunds are possible within 30 days.", embedding_for(REFERENCE)
    got = embedding_for(answer)
    distance = math.dist(got, vector)

    by_dot = grade(
        "embedding_similarity", answer, config(endpoint, metric="dot", threshold=0.8), similar=REFERENCE
    )
    assert by_dot.passed and by_dot.score == pytest.approx(
        sum(x * y for x, y in zip(got, vector, strict=True))
    )
    near = {"value": REFERENCE, "metric": "euclidean", "threshold": distance + 0.01}
    far = {"value": REFERENCE, "metric": "euclidean", "threshold": distance - 0.01}
    # A distance passes at the threshold or below, and scores 1 / (1 + distance).
    assert grade("embedding_similarity", answer, config(endpoint), similar=near).score == pytest.approx(
        1 / (1 + distance)
    )
    assert grade("embedding_similarity", answer, config(endpoint), similar=near).passed is True
    assert grade("embedding_similarity", answer, config(endpoint), similar=far).passed is False
    closest = {
        "value": ["Our office opens at nine.", REFERENCE],
        "metric": "euclidean",
        "threshold": distance,
    }
    assert (
        "against 'Refunds are possible"
        in grade("embedding_similarity", answer, config(endpoint), similar=closest).rationale
    )


def test_a_metric_and_its_threshold_are_checked_together(fake_openai):
    endpoint = make_endpoint(fake_openai.base_url)

    assert "config.metric must be one of cosine, dot, euclidean" in config_error(
        "embedding_similarity", config(endpoint, metric="manhattan")
    )
    assert "a distance threshold is at least 0" in config_error(
        "embedding_similarity", config(endpoint, metric="euclidean", threshold=-1)
    )
    assert "between -1 and 1" in config_error("embedding_similarity", config(endpoint, threshold=2))
    # A dot product is not bounded: any threshold is one.
    assert (
        grade("embedding_similarity", "x", config(endpoint, metric="dot", threshold=2), similar="y").passed
        is False
    )
