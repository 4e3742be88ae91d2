"""Code graders on evidence: the documents an answer cites, whether they were retrieved, and
whether the cited documents say what the answer says they say."""

import re
from typing import Any

from django.core.exceptions import ValidationError

from grading_app.graders import register
from grading_app.graders.base import ConfigField, GradeOutcome, GraderKind, GradingInput
from grading_app.graders.expected import string_list
from grading_app.traces import normalise_trace

_ID_SEPARATOR = re.compile(r"[,;\s]+")


def cited_ids(text: str, pattern: re.Pattern[str]) -> list[str]:
    """Ids cited in ``text``, in first-seen order; "[doc-1, doc-2]" under a wider pattern gives both."""
    ids: dict[str, None] = {}
    for match in pattern.finditer(text):
        raw = match.group(1) if pattern.groups else match.group(0)
        for part in _ID_SEPARATOR.split(raw or ""):
            if part:
                ids[part] = None
    return list(ids)


def retrieved_ids(trace: list[dict[str, Any]]) -> set[str] | None:
    """Ids of every document any retrieval step returned; None when the trace retrieved nothing."""
    steps = [step for step in trace if step.get("type") == "retrieval"]
    if not steps:
        return None
    ids: set[str] = set()
    for step in steps:
        for document in step.get("documents") or []:
            if isinstance(document, dict) and document.get("id") is not None:
                ids.add(str(document["id"]))
            elif isinstance(document, str):
                ids.add(document)
    return ids


@register
class Citations(GraderKind):
    key = "citations"
    dimension = "citation"
    description = (
        "The output cites every document id in expected.citations and, when the trace has "
        "retrieval steps, cites nothing that was not retrieved."
    )
    config_fields = {
        "pattern": ConfigField(
            str,
            r"\[([A-Za-z0-9_.:-]+)\]",
            "Regex of a citation; group 1 (else the whole match) holds the id(s), split on , ; or spaces.",
        ),
    }

    def check_config(self, config: dict[str, Any]) -> None:
        try:
            re.compile(config["pattern"])
        except re.error as exc:
            raise ValidationError({"config": f"citations: config.pattern is invalid: {exc}"}) from exc

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        # An empty list still applies: no id is required, but whatever is cited must be real.
        required = string_list(item.expected, "citations")
        if required is None:
            return None
        cited = cited_ids(item.output_text, re.compile(config["pattern"]))
        retrieved = retrieved_ids(normalise_trace(item.trace))
        missing = [doc for doc in required if doc not in cited]
        fabricated = [] if retrieved is None else [doc for doc in cited if doc not in retrieved]
        problems = []
        if missing:
            problems.append(f"missing citation(s): {', '.join(missing)}")
        if fabricated:
            problems.append(f"cited but never retrieved: {', '.join(fabricated)}")
        share_cited = (len(required) - len(missing)) / len(required) if required else 1.0
        # A fabricated citation is worse than a missing one: it zeroes the score.
        score = 0.0 if fabricated else share_cited
        if problems:
            return GradeOutcome(score, False, "; ".join(problems))
        grounded = "" if retrieved is None else ", all retrieved"
        return GradeOutcome(1.0, True, f"cites {', '.join(cited) or 'nothing'}{grounded}")
