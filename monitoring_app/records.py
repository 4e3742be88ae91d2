"""Validate production trace records (the API's batch items) into plain data; no database work."""

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from grading_app.detectors import missing_signals
from grading_app.graders.base import output_text
from grading_app.outputs import check_trace_and_metrics
from grading_app.traces import count_tool_calls
from monitoring_app.choices import Thumbs

RECORD_KEYS = {"id", "time", "source", "release", "input", "output", "trace", "metrics"} | {
    "feedback",
    "metadata",
}
FEEDBACK_KEYS = {"thumbs", "score", "comment"}
MAX_BATCH = 1000
MAX_ID = 200  # Trace.client_id
MAX_RELEASE = 200  # Trace.release
# A trace from the future is a clock or a typo; a small skew between machines is not.
FUTURE_SKEW = dt.timedelta(minutes=10)


@dataclass
class TraceRecord:
    """One production record as validated; ``source`` is a slug the caller resolves."""

    id: str
    time: dt.datetime
    source: str | None
    release: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    output: Any = None
    trace: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    feedback: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        """The Trace model's fields for this record (source and origin are the caller's).

        ``refused`` and ``escalated`` the source did not report are detected from the answer and
        the trace (grading_app.detectors), so production refusal and escalation rates are
        decided; ``*_detected`` says which were. Called on the redacted record, like every column.
        """
        text = output_text(self.output) if self.output is not None else None
        detected = missing_signals(text, self.trace, self.metrics)
        return {
            "client_id": self.id,
            "time": self.time,
            "release": self.release,
            "input": self.input,
            "output": self.output,
            "trace": self.trace,
            **{name: self.metrics.get(name) for name in ("ttft_ms", "latency_ms", "input_tokens")},
            **{name: self.metrics.get(name) for name in ("output_tokens", "cost_usd", "retries")},
            **{name: self.metrics.get(name) for name in ("refused", "escalated")},
            **detected,
            **{f"{name}_detected": name in detected for name in ("refused", "escalated")},
            "tool_calls": count_tool_calls(self.trace),
            "trace_steps": len(self.trace),
            "thumbs": self.feedback.get("thumbs") or "",
            "feedback_score": self.feedback.get("score"),
            "feedback_comment": self.feedback.get("comment") or "",
            "metadata": self.metadata,
        }


def _time(value: Any, where: str, errors: dict[str, str], now: dt.datetime) -> dt.datetime:
    if value is None:
        return now
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        errors[where] = "An ISO 8601 date and time, e.g. 2026-12-02T10:15:00Z."
        return now
    if timezone.is_naive(parsed):
        errors[where] = "Give the time zone (Z or +01:00): a naive time is ambiguous."
        return now
    if parsed > now + FUTURE_SKEW:
        errors[where] = "In the future: check the sender's clock."
    return parsed


def _input(value: Any, where: str, errors: dict[str, str]) -> dict[str, Any]:
    """Chat messages and/or vars, as cases hold them; a bare message list is accepted as messages."""
    if value is None:
        return {}
    if isinstance(value, list):
        value = {"messages": value}
    if isinstance(value, str):
        value = {"messages": [{"role": "user", "content": value}]}
    if not isinstance(value, dict):
        errors[where] = "An object with messages and/or vars (or a list of chat messages)."
        return {}
    messages = value.get("messages")
    if messages is not None and (
        not isinstance(messages, list)
        or not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages)
    ):
        errors[f"{where}.messages"] = "A list of chat messages, each with a role."
    return value


def _feedback(value: Any, where: str, errors: dict[str, str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors[where] = "An object with thumbs, score and/or comment."
        return {}
    if unknown := sorted(set(value) - FEEDBACK_KEYS):
        errors[where] = f"Unknown key(s): {', '.join(unknown)} (known: thumbs, score, comment)."
    thumbs = value.get("thumbs")
    if thumbs is not None and thumbs not in Thumbs.values:
        errors[f"{where}.thumbs"] = "up or down."
    score = value.get("score")
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1
    ):
        errors[f"{where}.score"] = "A number from 0 to 1."
    comment = value.get("comment")
    if comment is not None and not isinstance(comment, str):
        errors[f"{where}.comment"] = "Text."
    return value


def _text(value: Any, where: str, limit: int, errors: dict[str, str], *, required: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        errors[where] = "Required: text." if required else "Text."
        return ""
    if len(value) > limit:
        errors[where] = f"At most {limit} characters."
    return value


def parse_records(raw: Any, *, path: str = "traces") -> list[TraceRecord]:
    """Every problem of the batch is collected, so one 400 names all of them (``traces[3].time``)."""
    if not isinstance(raw, list) or not raw:
        raise ValidationError({path: "A non-empty list of trace records."})
    if len(raw) > MAX_BATCH:
        raise ValidationError({path: f"At most {MAX_BATCH} records per request (got {len(raw)})."})
    now = timezone.now()
    errors: dict[str, str] = {}
    records: list[TraceRecord] = []
    seen: dict[tuple[Any, str], int] = {}
    for index, entry in enumerate(raw):
        where = f"{path}[{index}]"
        if not isinstance(entry, dict):
            errors[where] = "A trace record is an object."
            continue
        if unknown := sorted(set(entry) - RECORD_KEYS):
            errors[where] = f"Unknown key(s): {', '.join(unknown)} (known: {', '.join(sorted(RECORD_KEYS))})."
        client_id = _text(entry.get("id"), f"{where}.id", MAX_ID, errors, required=True)
        source = entry.get("source")
        if source is not None and not isinstance(source, str):
            errors[f"{where}.source"] = "A source slug."
            source = None
        if client_id and (source, client_id) in seen:
            errors[f"{where}.id"] = f"Repeats traces[{seen[source, client_id]}] in the same batch."
        seen.setdefault((source, client_id), index)
        output = entry.get("output")
        if not isinstance(output, str | dict | list | type(None)):
            errors[f"{where}.output"] = "Text or a JSON object (null if none)."
        trace, metrics = check_trace_and_metrics(entry, where, errors)
        metadata = entry.get("metadata") or {}
        if not isinstance(metadata, dict):
            errors[f"{where}.metadata"] = "An object."
        records.append(
            TraceRecord(
                id=client_id,
                time=_time(entry.get("time"), f"{where}.time", errors, now),
                source=source,
                release=_text(entry.get("release"), f"{where}.release", MAX_RELEASE, errors, required=False),
                input=_input(entry.get("input"), f"{where}.input", errors),
                output=output,
                trace=trace,
                metrics=metrics if isinstance(metrics, dict) else {},
                feedback=_feedback(entry.get("feedback"), f"{where}.feedback", errors),
                metadata=metadata if isinstance(metadata, dict) else {},
            )
        )
    if errors:
        raise ValidationError(errors)
    return records
