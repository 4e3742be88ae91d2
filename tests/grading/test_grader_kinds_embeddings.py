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
