"""Decode OTLP/HTTP trace exports (protobuf or JSON, as the OpenTelemetry spec defines them)
into plain span dicts; no database work.

Both encodings give the same shape: ``{"trace_id", "span_id", "parent_id", "name", "kind",
"start_ns", "end_ns", "attributes", "events", "status", "resource"}``, ids as lowercase hex
(the JSON encoding sends hex; protobuf sends bytes), attribute values as Python values.
"""

import base64
import json
from typing import Any

MAX_SPANS = 10_000  # per export request; the SDK's batch processor sends 512 at a time


class OtlpError(ValueError):
    """The export cannot be read; the message names where (``resourceSpans[0].scopeSpans[1]``)."""


# --- protobuf ---------------------------------------------------------------------------


def _any_value_pb(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value_pb(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value_pb(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def _attributes_pb(attributes: Any) -> dict[str, Any]:
    return {kv.key: _any_value_pb(kv.value) for kv in attributes}


def decode_protobuf(body: bytes) -> list[dict[str, Any]]:
    """Spans of an ``ExportTraceServiceRequest`` in protobuf encoding."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpError(f"The body is not an OTLP ExportTraceServiceRequest in protobuf: {exc}") from None
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes_pb(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": int(span.kind),
                        "start_ns": int(span.start_time_unix_nano),
                        "end_ns": int(span.end_time_unix_nano),
                        "attributes": _attributes_pb(span.attributes),
                        "events": [
                            {
                                "name": event.name,
                                "time_ns": int(event.time_unix_nano),
                                "attributes": _attributes_pb(event.attributes),
                            }
                            for event in span.events
                        ],
                        "status": {"code": int(span.status.code), "message": span.status.message},
                        "resource": resource,
                        "scope": scope_spans.scope.name,
                    }
                )
    return _checked(spans)


# --- JSON -------------------------------------------------------------------------------

_SCALARS = {"stringValue": str, "boolValue": bool, "intValue": int, "doubleValue": float}


def _any_value_json(value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise OtlpError(f"{where}: an AnyValue object.")
    for key, kind in _SCALARS.items():
        if key in value:
            raw = value[key]
            try:
                # int64 travels as a JSON string (the protobuf JSON mapping); accept both.
                return kind(raw) if kind is not bool else bool(raw)
            except (TypeError, ValueError):
                raise OtlpError(f"{where}.{key}: not a {kind.__name__}.") from None
    if "arrayValue" in value:
        values = (value["arrayValue"] or {}).get("values") or []
        return [_any_value_json(v, f"{where}.arrayValue.values[{i}]") for i, v in enumerate(values)]
    if "kvlistValue" in value:
        return _attributes_json((value["kvlistValue"] or {}).get("values") or [], f"{where}.kvlistValue")
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def _attributes_json(attributes: Any, where: str) -> dict[str, Any]:
    if not isinstance(attributes, list):
        raise OtlpError(f"{where}: a list of {{key, value}} objects.")
    out = {}
    for index, kv in enumerate(attributes):
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise OtlpError(f"{where}[{index}]: an object with a key.")
        out[kv["key"]] = _any_value_json(kv.get("value") or {}, f"{where}[{index}].value")
    return out


def _hex_id(value: Any, length: int, where: str, *, required: bool) -> str:
    if value in (None, "") and not required:
        return ""
    if not isinstance(value, str) or len(value) != length:
        raise OtlpError(f"{where}: {length} hex digits.")
    try:
        bytes.fromhex(value)
    except ValueError:
        raise OtlpError(f"{where}: {length} hex digits.") from None
    return value.lower()


def _nanos(value: Any, where: str) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        raise OtlpError(f"{where}: nanoseconds since the epoch.") from None


def decode_json(body: bytes) -> list[dict[str, Any]]:
    """Spans of an ``ExportTraceServiceRequest`` in the OTLP JSON encoding (hex ids, camelCase)."""
    try:
        document = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise OtlpError(f"The body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise OtlpError("body: an ExportTraceServiceRequest object with resourceSpans.")
    spans = []
    for r_index, resource_spans in enumerate(document.get("resourceSpans") or []):
        where = f"resourceSpans[{r_index}]"
        if not isinstance(resource_spans, dict):
            raise OtlpError(f"{where}: an object.")
        resource = _attributes_json(
            (resource_spans.get("resource") or {}).get("attributes") or [], f"{where}.resource.attributes"
        )
        for s_index, scope_spans in enumerate(resource_spans.get("scopeSpans") or []):
            scope_where = f"{where}.scopeSpans[{s_index}]"
            if not isinstance(scope_spans, dict):
                raise OtlpError(f"{scope_where}: an object.")
            for index, span in enumerate(scope_spans.get("spans") or []):
                at = f"{scope_where}.spans[{index}]"
                if not isinstance(span, dict):
                    raise OtlpError(f"{at}: an object.")
                events = []
                for e_index, event in enumerate(span.get("events") or []):
                    if not isinstance(event, dict):
                        raise OtlpError(f"{at}.events[{e_index}]: an object.")
                    events.append(
                        {
                            "name": str(event.get("name", "")),
                            "time_ns": _nanos(
                                event.get("timeUnixNano"), f"{at}.events[{e_index}].timeUnixNano"
                            ),
                            "attributes": _attributes_json(
                                event.get("attributes") or [], f"{at}.events[{e_index}].attributes"
                            ),
                        }
                    )
                status = span.get("status") or {}
                spans.append(
                    {
                        "trace_id": _hex_id(span.get("traceId"), 32, f"{at}.traceId", required=True),
                        "span_id": _hex_id(span.get("spanId"), 16, f"{at}.spanId", required=True),
                        "parent_id": _hex_id(
                            span.get("parentSpanId"), 16, f"{at}.parentSpanId", required=False
                        ),
                        "name": str(span.get("name", "")),
                        "kind": _nanos(span.get("kind"), f"{at}.kind"),
                        "start_ns": _nanos(span.get("startTimeUnixNano"), f"{at}.startTimeUnixNano"),
                        "end_ns": _nanos(span.get("endTimeUnixNano"), f"{at}.endTimeUnixNano"),
                        "attributes": _attributes_json(span.get("attributes") or [], f"{at}.attributes"),
                        "events": events,
                        "status": {
                            "code": _nanos(status.get("code"), f"{at}.status.code"),
                            "message": str(status.get("message", "")),
                        },
                        "resource": resource,
                        "scope": str((scope_spans.get("scope") or {}).get("name", "")),
                    }
                )
    return _checked(spans)


def _checked(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(spans) > MAX_SPANS:
        raise OtlpError(f"At most {MAX_SPANS} spans per export (got {len(spans)}).")
    for span in spans:
        if span["trace_id"] == "0" * 32 or span["span_id"] == "0" * 16:
            raise OtlpError(f"Span {span['name']!r} has an all-zero trace or span id (invalid in OTLP).")
    return spans


# --- responses ---------------------------------------------------------------------------


def _status_message_class() -> Any:
    """google.rpc.Status, built from its descriptor: the spec's error body for protobuf clients
    (opentelemetry-proto does not ship it, and it is three fields)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    file = descriptor_pb2.FileDescriptorProto(name="evalgate_rpc_status.proto", package="google.rpc")
    message = file.message_type.add(name="Status")
    message.field.add(name="code", number=1, type=5, label=1)  # int32
    message.field.add(name="message", number=2, type=9, label=1)  # string
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


def error_body(message: str, *, protobuf: bool, code: int = 3) -> bytes:
    """A Status body (code 3 is INVALID_ARGUMENT) in the request's encoding."""
    if protobuf:
        return _status_message_class()(code=code, message=message).SerializeToString()
    return json.dumps({"code": code, "message": message}).encode()


def success_body(*, protobuf: bool, rejected: int = 0, message: str = "") -> bytes:
    """An ExportTraceServiceResponse, with partial_success when some spans were refused."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if protobuf:
        return response.SerializeToString()
    body: dict[str, Any] = {}
    if rejected:
        body["partialSuccess"] = {"rejectedSpans": str(rejected), "errorMessage": message}
    return json.dumps(body).encode()
