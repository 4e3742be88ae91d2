"""The embedding_similarity kind: cosine similarity (or dot product, or Euclidean distance) of
the output's and the reference's embeddings, from an Endpoint's OpenAI-compatible /embeddings
(promptfoo's similar, similar:dot and similar:euclidean; OpenAI's text_similarity with cosine).

Not a pure kind: each grade asks the endpoint (through grading_app.llm) for two embeddings.
A failed call is a grade error, never a pass.
"""

import math
from typing import Any

from django.core.exceptions import ValidationError

from grading_app.graders import register
from grading_app.graders.base import ConfigField, GradeOutcome, GraderKind, GradingInput
from grading_app.graders.strings import text_values


def cosine(left: list[float], right: list[float]) -> float:
    """Cosine similarity of two vectors (0 when either is all zeros)."""
    norms = math.sqrt(sum(x * x for x in left)) * math.sqrt(sum(y * y for y in right))
    return dot(left, right) / norms if norms else 0.0


def dot(left: list[float], right: list[float]) -> float:
    if len(left) != len(right):
        raise ValueError(f"embeddings of different sizes ({len(left)} and {len(right)})")
    return sum(x * y for x, y in zip(left, right, strict=True))


def euclidean(left: list[float], right: list[float]) -> float:
    dot(left, right)  # the same size check
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(left, right, strict=True)))


METRICS = ("cosine", "dot", "euclidean")


def compare(metric: str, output: list[float], reference: list[float]) -> tuple[float, float]:
    """(the metric's value, a score where higher is closer): a similarity is its own score; a
    distance d scores 1 / (1 + d), as promptfoo scores it."""
    if metric == "euclidean":
        distance = euclidean(output, reference)
        return distance, 1 / (1 + distance)
    value = cosine(output, reference) if metric == "cosine" else dot(output, reference)
    return value, value


@register
class EmbeddingSimilarity(GraderKind):
    key = "embedding_similarity"
    dimension = "correctness"
    description = (
        "The cosine similarity between the embeddings of the output and of expected.similar (a "
        "reference, or a list: the closest counts) is at least the threshold (metric dot: their "
        "dot product; metric euclidean: their distance is at most the threshold); the embeddings "
        "come from config.endpoint (an Endpoint's name) and config.model."
    )
    config_fields = {
        "expected_field": ConfigField(str, "similar", "Key of expected holding the reference(s)."),
        "endpoint": ConfigField(str, "", "Name of the Endpoint serving /embeddings."),
        "model": ConfigField(str, "", "Embedding model at that endpoint."),
        "threshold": ConfigField(
            (int, float), 0.75, "Pass at this similarity or more (euclidean: this distance or less)."
        ),
        "metric": ConfigField(str, "cosine", "cosine | dot | euclidean"),
    }
    case_options = ("threshold", "metric")

    def check_config(self, config: dict[str, Any]) -> None:
        for name in ("endpoint", "model"):
            if not config[name]:
                raise ValidationError({"config": f"embedding_similarity: config.{name} is required."})
        if config["metric"] not in METRICS:
            raise ValidationError(
                {"config": f"embedding_similarity: config.metric must be one of {', '.join(METRICS)}."}
            )
        if config["metric"] == "cosine" and not -1 <= config["threshold"] <= 1:
            raise ValidationError(
                {"config": "embedding_similarity: config.threshold must be between -1 and 1."}
            )
        if config["metric"] == "euclidean" and config["threshold"] < 0:
            raise ValidationError({"config": "embedding_similarity: a distance threshold is at least 0."})

    def applies(self, item: GradingInput, config: dict[str, Any]) -> bool:
        # Not the base class's probe: grading the probe would ask the endpoint for embeddings.
        try:
            return bool(self.case_assertions(item.expected, config["expected_field"], config))
        except ValueError:
            return False

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        # Imported here: the registry loads while grading_app.models is still importing.
        from grading_app import llm
        from grading_app.models import Endpoint

        key = config["expected_field"]
        found = self.case_assertions(item.expected, key, config)
        if not found:
            return None
        endpoint = Endpoint.objects.filter(name=config["endpoint"]).first()
        if endpoint is None:
            raise ValueError(f"no endpoint named {config['endpoint']!r}")
        references = [text_values(a.value, a.where) for a in found]
        texts = [item.output_text, *(r for refs in references for r in refs)]
        # One call for the output and every reference of the case.
        vectors = iter(llm.embed(endpoint, config["model"], texts))
        output_vector = next(vectors)

        def check(value: Any, settings: dict[str, Any]) -> GradeOutcome:
            refs = text_values(value, "")
            metric, threshold = settings["metric"], settings["threshold"]
            compared = [(*reversed(compare(metric, output_vector, next(vectors))), ref) for ref in refs]
            # The closest reference counts: the highest score (for a distance, the smallest).
            score, measured, best = max(compared)
            passed = measured <= threshold if metric == "euclidean" else measured >= threshold
            versus = f" against {best[:80]!r}" if len(refs) > 1 else ""
            return GradeOutcome(
                max(0.0, score) if metric == "cosine" else score,
                passed,
                f"{metric} {measured:.3f}{versus} (threshold {threshold})",
            )

        return self.grade_assertions(item.expected, key, config, check)
