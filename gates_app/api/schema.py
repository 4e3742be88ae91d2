"""OpenAPI documentation of the API's error responses, so clients see every status they may get."""

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="Machine-readable: invalid, malformed_json, unauthenticated, forbidden, not_found, "
        "in_flight, idempotency_key_reused, throttled, ..."
    )
    message = serializers.CharField(help_text="For people: what went wrong and what to do.")
    details = serializers.DictField(
        help_text="For 400: each invalid field (e.g. cases[3].input) with its messages; "
        "for 429: retry_after_s; otherwise usually empty."
    )


class ErrorSerializer(serializers.Serializer):
    """The one error shape of the API (gates_app.api.errors)."""

    error = ErrorBodySerializer()


ERROR_DESCRIPTIONS = {
    400: "Invalid input, or a body that is not JSON.",
    401: "No valid credentials: a missing, malformed, expired or revoked token.",
    403: "Not allowed: the token lacks the scope, or the user lacks the permission.",
    404: "No such object among those the credentials can see.",
    409: "A request with the same Idempotency-Key is still being processed; retry later.",
    413: "The body is larger than the server's request limit (details.limit_bytes), compressed or not.",
    415: "The body's Content-Type is not one this endpoint reads.",
    422: "The Idempotency-Key was already used with a different request body.",
    429: "Rate limited: retry after the Retry-After header's seconds.",
}


def error_responses(*extra: int) -> dict[int, OpenApiResponse]:
    """The errors every endpoint can answer (400, 401, 403, 404, 429), plus ``extra`` statuses."""
    statuses = sorted({400, 401, 403, 404, 429, *extra})
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code]) for code in statuses}


# JSON Schemas of bodies validated by grading_app.outputs and written by gates_app.evaluation:
# serializers would validate them again (with other error paths), so these only document.
NUMBER = {"type": "number", "minimum": 0, "maximum": 1e12, "nullable": True}
COUNT = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1, "nullable": True}
FLAG = {"type": "boolean", "nullable": True}
ANY = {}  # any JSON value

METRICS_SCHEMA = {
    "type": "object",
    "description": "Production signals of this case; all optional.",
    "properties": {
        "latency_ms": NUMBER,
        "ttft_ms": NUMBER,
        "input_tokens": COUNT,
        "output_tokens": COUNT,
        "cost_usd": NUMBER,
        "retries": COUNT,
        "refused": FLAG,
        "escalated": FLAG,
    },
    "additionalProperties": False,
}


def _step(kind: str, properties: dict, required: list[str]) -> dict:
    return {
        "type": "object",
        "properties": {"type": {"type": "string", "enum": [kind]}, **properties},
        "required": ["type", *required],
    }


TRACE_STEP_SCHEMA = {
    "anyOf": [
        _step("message", {"role": {"type": "string"}, "content": ANY}, []),
        _step(
            "tool_call",
            {"name": {"type": "string"}, "arguments": ANY, "result": ANY, "error": ANY},
            ["name"],
        ),
        _step(
            "retrieval",
            {
                "documents": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"id": {"type": "string"}, "text": ANY}},
                }
            },
            [],
        ),
        _step(
            "approval",
            {"tool": {"type": "string"}, "granted": {"type": "boolean"}, "by": {"type": "string"}},
            ["tool"],
        ),
        {
            "type": "object",
            "description": "An OpenAI chat message (a transcript instead of typed steps): converted.",
            "properties": {
                "role": {"type": "string", "enum": ["system", "user", "assistant", "tool", "developer"]},
                "content": ANY,
                "tool_calls": {"type": "array", "items": {"type": "object"}},
                "tool_call_id": {"type": "string"},
            },
            "required": ["role"],
        },
    ]
}

OUTPUT_ITEM_SCHEMA = {
    "type": "object",
    "properties": {
        "case": {"type": "string", "minLength": 1, "maxLength": 200, "description": "The case key."},
        "output": {
            "description": "Text, or a JSON object or list; null when the candidate produced nothing.",
            "nullable": True,
            "oneOf": [{"type": "string"}, {"type": "object"}, {"type": "array", "items": ANY}],
        },
        "trace": {"type": "array", "items": TRACE_STEP_SCHEMA, "nullable": True},
        "metrics": METRICS_SCHEMA,
        "trial": {
            "type": "integer",
            "minimum": 1,
            "maximum": 20,
            "description": "Which trial of the case this output is (repeated trials: 1, 2, ...).",
        },
    },
    "required": ["case", "output"],
    "additionalProperties": False,
}

_DELTA = {
    "type": "object",
    "properties": {
        "candidate": {"type": "number", "nullable": True},
        "baseline": {"type": "number", "nullable": True},
        "delta": {"type": "number", "nullable": True},
    },
}
TRACE_DELTAS_SCHEMA = {
    "type": "object",
    "description": "Per failure class, against the baseline check (empty without a baseline).",
    "additionalProperties": {
        "type": "object",
        "properties": {
            "tool_calls_mean": _DELTA,
            "trace_steps_mean": _DELTA,
            "retry_rate": _DELTA,
            "refusal_rate": _DELTA,
            "tool_sequence_changed": {
                "type": "object",
                "properties": {
                    "count": {"type": "integer"},
                    "cases": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "case": {"type": "string"},
                                "baseline": {"type": "array", "items": {"type": "string"}},
                                "candidate": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        },
    },
}


def optional_upload(result: dict, generator: object, request: object, public: bool) -> dict:
    """drf-spectacular postprocessing hook: a check's ``upload`` appears only for checks whose
    outputs come in pages, so the accepted body does not always carry it."""
    accepted = result.get("components", {}).get("schemas", {}).get("CheckAccepted", {})
    if "upload" in accepted.get("required", []):
        accepted["required"].remove("upload")
    return result
