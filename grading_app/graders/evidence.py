"""Code graders on evidence: the documents an answer cites, whether they were retrieved, and
whether the cited documents say what the answer says they say."""

import re
from typing import Any

from django.core.exceptions import ValidationError

from grading_app.graders import register
from grading_app.graders.base import ConfigField, GradeOutcome, GraderKind, GradingInput
from grading_app.graders.expected import string_list
from grading_app.graders.facts import unsupported
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


def retrieved_documents(trace: list[dict[str, Any]]) -> dict[str, str] | None:
    """Text of every document a retrieval step returned, by id (documents retrieved twice:
    their texts joined); None when the trace retrieved nothing."""
    steps = [step for step in trace if step.get("type") == "retrieval"]
    if not steps:
        return None
    texts: dict[str, list[str]] = {}
    for step in steps:
        for document in step.get("documents") or []:
            if isinstance(document, dict) and document.get("id") is not None:
                text = document.get("text", "")
                texts.setdefault(str(document["id"]), []).append(text if isinstance(text, str) else str(text))
            elif isinstance(document, str):
                texts.setdefault(document, [])
    return {doc: "\n".join(parts) for doc, parts in texts.items()}


def retrieved_ids(trace: list[dict[str, Any]]) -> set[str] | None:
    """Ids of every document any retrieval step returned; None when the trace retrieved nothing."""
    documents = retrieved_documents(trace)
    return None if documents is None else set(documents)


DEFAULT_CITATION = r"\[([A-Za-z0-9_.:-]+)\]"
_PATTERN_FIELD = ConfigField(
    str,
    DEFAULT_CITATION,
    "Regex of a citation; group 1 (else the whole match) holds the id(s), split on , ; or spaces.",
)


def _check_pattern(kind: str, config: dict[str, Any]) -> None:
    try:
        re.compile(config["pattern"])
    except re.error as exc:
        raise ValidationError({"config": f"{kind}: config.pattern is invalid: {exc}"}) from exc


@register
class Citations(GraderKind):
    key = "citations"
    dimension = "citation"
    description = (
        "The output cites every document id in expected.citations and, when the trace has "
        "retrieval steps, cites nothing that was not retrieved."
    )
    config_fields = {"pattern": _PATTERN_FIELD}

    def check_config(self, config: dict[str, Any]) -> None:
        _check_pattern(self.key, config)

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


# Sentence ends: ., ! or ? followed by space (so "1.5" and "e.g.x" stay whole), and line breaks.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def citing_sentences(text: str, pattern: re.Pattern[str]) -> list[tuple[str, list[str]]]:
    """Each sentence of ``text`` that cites something, with the ids it cites. A citation written
    after the full stop ("... 30 days. [doc-1]") belongs to the sentence before it."""
    leading = re.compile(rf"^(?:\s*(?:{pattern.pattern}))+")
    sentences: list[str] = []
    for part in _SENTENCE_END.split(text):
        head = leading.match(part)
        if head and sentences:
            sentences[-1] += " " + head.group(0)
            part = part[head.end() :]
        if part.strip():
            sentences.append(part)
    found = []
    for sentence in sentences:
        ids = cited_ids(sentence, pattern)
        if ids:
            found.append((" ".join(pattern.sub(" ", sentence).split()), ids))
    return found


@register
class CitationSupport(GraderKind):
    key = "citation_support"
    dimension = "support"
    description = (
        "For cases with expected.citations: every citation in the output points at a document the "
        "trace retrieved, and every figure, date and amount of the citing sentence occurs in the "
        'document(s) it cites ("90 days [doc-1]" fails when doc-1 says 30 days).'
    )
    config_fields = {
        "expected_field": ConfigField(str, "citations", "Key of expected."),
        "pattern": _PATTERN_FIELD,
    }

    def check_config(self, config: dict[str, Any]) -> None:
        _check_pattern(self.key, config)

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        if string_list(item.expected, config["expected_field"]) is None:
            return None
        sentences = citing_sentences(item.output_text, re.compile(config["pattern"]))
        if not sentences:
            return GradeOutcome(
                1.0, True, "cites nothing (whether it should is the citations grader's question)"
            )
        documents = retrieved_documents(normalise_trace(item.trace)) or {}
        problems: list[str] = []
        supported = 0
        for index, (claim, ids) in enumerate(sentences, start=1):
            unretrieved = [doc for doc in ids if doc not in documents]
            sources = [documents[doc] for doc in ids if doc in documents]
            missing = unsupported(claim, sources) if sources else []
            if unretrieved:
                problems.append(f"sentence {index} cites {', '.join(unretrieved)}, never retrieved")
            if missing:
                cited = ", ".join(doc for doc in ids if doc in documents)
                problems.append(f"sentence {index}: {', '.join(map(repr, missing))} not in {cited}")
            supported += not unretrieved and not missing
        score = supported / len(sentences)
        if problems:
            return GradeOutcome(score, False, "; ".join(problems))
        return GradeOutcome(
            1.0, True, f"{len(sentences)} citing sentence(s), each supported by what it cites"
        )


@register
class Retrieval(GraderKind):
    key = "retrieval"
    dimension = "support"
    description = (
        "The trace retrieved the evidence the case needs: recall (and precision) of the retrieved "
        "document ids against expected.evidence (an id or a list) at least min_recall (1.0) and "
        "min_precision (0.0). The score is the recall."
    )
    config_fields = {
        "expected_field": ConfigField(str, "evidence", "Key of expected holding the document ids."),
        "min_recall": ConfigField((int, float), 1.0, "Share of the evidence that must be retrieved."),
        "min_precision": ConfigField(
            (int, float), 0.0, "Share of the retrieved documents that must be evidence."
        ),
    }
    case_options = ("min_recall", "min_precision")

    def check_config(self, config: dict[str, Any]) -> None:
        for name in ("min_recall", "min_precision"):
            if not 0 <= config[name] <= 1:
                raise ValidationError({"config": f"retrieval: config.{name} must be between 0 and 1."})

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        key = config["expected_field"]
        retrieved = retrieved_ids(normalise_trace(item.trace)) or set()

        def check(value: Any, settings: dict[str, Any]) -> GradeOutcome:
            evidence = string_list({key: value}, key)
            if not evidence:
                raise ValueError(f"expected.{key} must name at least one document id")
            found = set(evidence) & retrieved
            recall = len(found) / len(set(evidence))
            precision = len(found) / len(retrieved) if retrieved else 0.0
            missing = sorted(set(evidence) - retrieved)
            why = f"recall {recall:.2f}, precision {precision:.2f}"
            if missing:
                why += f"; not retrieved: {', '.join(missing)}"
            passed = recall >= settings["min_recall"] and precision >= settings["min_precision"]
            return GradeOutcome(recall, passed, why)

        return self.grade_assertions(item.expected, key, config, check)
