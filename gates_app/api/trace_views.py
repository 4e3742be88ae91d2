"""Production traffic in: trace batches (``POST /api/v1/traces/``) and the OTLP/HTTP receiver."""

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app.choices import Severity
from datasets_app.models import FailureClass
from gates_app.api.dataset_views import IncidentAcceptedSerializer, datasets_for, token_writer
from gates_app.api.parsers import RequestTooLarge, decompress, request_limit
from gates_app.api.permissions import deploy_token, require_scope
from gates_app.api.query import StrictQueryParams
from gates_app.api.schema import error_responses
from gates_app.api.serializers import StrictCharField
from gates_app.choices import Scope
from monitoring_app import ingest, otlp
from monitoring_app import services as monitoring
from monitoring_app.models import Source, Trace
from monitoring_app.records import MAX_BATCH

PROTOBUF = "application/x-protobuf"


def writable_sources(request: Request) -> QuerySet[Source]:
    """Sources the requester may send traces to: a deploy token's (scope traces:write) are the
    sources linked to its gates; a user needs the permission to add traces, and reaches all."""
    require_scope(request, Scope.TRACES_WRITE)
    token = deploy_token(request)
    if token is not None:
        return Source.objects.filter(gates__tokens=token).distinct()
    if not request.user.has_perm("monitoring_app.add_trace"):
        raise PermissionDenied("You lack the permission to send production traces.")
    return Source.objects.all()


class TraceItemSerializer(serializers.Serializer):
    """One production record (for the OpenAPI schema; the service validates every field)."""

    id = serializers.CharField(max_length=200, help_text="The sender's id: sending it again stores nothing.")
    time = serializers.DateTimeField(required=False, help_text="When it was served (ISO 8601 with zone).")
    source = serializers.SlugField(required=False, help_text="Needed when the token reaches several sources.")
    release = serializers.CharField(required=False, help_text="The candidate id that served it.")
    input = serializers.JSONField(required=False, help_text="{messages: [...], vars: {...}}")
    output = serializers.JSONField(required=False, allow_null=True)
    trace = serializers.ListField(child=serializers.DictField(), required=False)
    metrics = serializers.DictField(required=False)
    feedback = serializers.DictField(required=False, help_text="{thumbs: up|down, score: 0..1, comment}")
    metadata = serializers.DictField(required=False)


class TraceBatchSerializer(serializers.Serializer):
    traces = TraceItemSerializer(many=True, help_text=f"1 to {MAX_BATCH} records.")


class TraceBatchResultSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    stored = serializers.IntegerField()
    duplicates = serializers.ListField(child=serializers.CharField(), help_text="Ids already stored.")


class TraceBatchCreate(StrictQueryParams, APIView):
    @extend_schema(
        request=TraceBatchSerializer, responses={200: TraceBatchResultSerializer, **error_responses(413)}
    )
    def post(self, request: Request) -> Response:
        sources = writable_sources(request)
        data = request.data
        raw = data.get("traces") if isinstance(data, dict) else None
        if not isinstance(data, dict) or set(data) - {"traces"}:
            return Response(
                {"error": {"code": "invalid", "message": 'The body is {"traces": [...]}.', "details": {}}},
                status=status.HTTP_400_BAD_REQUEST,
            )
        done = ingest.ingest_batch(raw, sources)
        body = {"received": len(raw), "stored": len(done.stored), "duplicates": done.duplicates}
        return Response(body, status=status.HTTP_200_OK)


class OtlpParser(BaseParser):
    """The raw export (decompressed within the request limit); decoding happens in the view."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> bytes:
        request = (parser_context or {}).get("request")
        data = stream.read() if stream is not None else b""
        encoding = (
            (request.META.get("HTTP_CONTENT_ENCODING", "") if request is not None else "").strip().lower()
        )
        if encoding and encoding != "identity":
            return decompress(data, encoding)
        if len(data) > request_limit():
            raise RequestTooLarge(request_limit())
        return data


class OtlpStatusSerializer(serializers.Serializer):
    """google.rpc.Status, the OTLP/HTTP spec's error body (JSON here; protobuf for protobuf requests)."""

    code = serializers.IntegerField(help_text="3: INVALID_ARGUMENT.")
    message = serializers.CharField(help_text="What cannot be read, and where (resourceSpans[0]...).")


class OtlpTraces(APIView):
    """``POST /otlp/v1/traces``: an OpenTelemetry exporter's endpoint (protobuf or JSON).

    Answers as the OTLP/HTTP spec says: 200 with an ExportTraceServiceResponse (partial_success
    when spans were refused) in the request's encoding, 400 with a Status for a body that
    cannot be read, 415 for another content type.
    """

    parser_classes = [OtlpParser]

    @extend_schema(
        request={PROTOBUF: bytes, "application/json": dict},
        responses={
            **error_responses(413),
            200: OpenApiResponse(
                description="ExportTraceServiceResponse (partialSuccess when spans were refused)"
            ),
            400: OpenApiResponse(OtlpStatusSerializer, description="The body is not an OTLP trace export."),
            415: OpenApiResponse(OtlpStatusSerializer, description="Neither protobuf nor JSON."),
        },
    )
    def post(self, request: Request) -> HttpResponse:
        sources = writable_sources(request)
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        if content_type not in (PROTOBUF, "application/json"):
            return HttpResponse(
                otlp.error_body(
                    f"Send {PROTOBUF} or application/json, not {content_type or 'nothing'}.", protobuf=False
                ),
                status=415,
                content_type="application/json",
            )
        protobuf = content_type == PROTOBUF
        try:
            body = request.data
            spans = otlp.decode_protobuf(body) if protobuf else otlp.decode_json(body)
        except otlp.OtlpError as exc:
            return HttpResponse(
                otlp.error_body(str(exc), protobuf=protobuf), status=400, content_type=content_type
            )
        header = request.headers.get("Evalgate-Source", "").strip()
        by_source: dict[Source, list[dict[str, Any]]] = {}
        unroutable = 0
        for span in spans:
            source = ingest.otlp_source(span["resource"], header, sources)
            if source is None:
                unroutable += 1
                continue
            by_source.setdefault(source, []).append(span)
        done = ingest.ingest_spans(by_source)
        problems = []
        if unroutable:
            problems.append(
                f"{unroutable} span(s) name no source this token may write to (set the Evalgate-Source "
                "header or the evalgate.source resource attribute)"
            )
        if done.late_spans:
            problems.append(
                f"{done.late_spans} span(s) arrived after their trace was stored and were not kept"
            )
        rejected = unroutable + done.late_spans
        return HttpResponse(
            otlp.success_body(protobuf=protobuf, rejected=rejected, message="; ".join(problems)),
            status=200,
            content_type=content_type,
        )


# --- From a trace to the suite -----------------------------------------------------------


def readable_trace(request: Request, source: str, client_id: str) -> Trace:
    """The trace, if the requester may see it: a deploy token sees the traces of its gates'
    sources; a user needs the permission to view traces. Others get a 404, as for gates."""
    token = deploy_token(request)
    if token is not None:
        sources = Source.objects.filter(gates__tokens=token)
    elif request.user.has_perm("monitoring_app.view_trace"):
        sources = Source.objects.all()
    else:
        sources = Source.objects.none()
    found = Trace.objects.select_related("source").filter(
        source__in=sources, source__slug=source, client_id=client_id
    )
    trace = found.first()
    if trace is None:
        raise NotFound(f"No trace {client_id!r} of source {source!r} (or not one you may see).")
    return trace


TRACE_PATH = [
    OpenApiParameter("source", str, OpenApiParameter.PATH, description="The trace's source (slug)."),
    OpenApiParameter(
        "client_id", str, OpenApiParameter.PATH, description="The id the sender gave the trace."
    ),
]


class TraceIncidentSerializer(serializers.Serializer):
    title = StrictCharField(max_length=300)
    severity = serializers.ChoiceField(choices=Severity.choices, default=Severity.MEDIUM)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    dataset = serializers.SlugField(required=False, allow_null=True, default=None)
    failure_class = serializers.SlugField(required=False, allow_null=True, default=None)


class TraceCaseSerializer(serializers.Serializer):
    dataset = serializers.SlugField()
    failure_class = serializers.SlugField(help_text="The failure class the person chose.")
    key = serializers.SlugField(required=False, allow_blank=True, default="", max_length=200)


class TraceCaseCreatedSerializer(serializers.Serializer):
    key = serializers.CharField()
    dataset = serializers.CharField()
    status = serializers.CharField()


def _dataset_and_class(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    errors, found = {}, {}
    if data.get("dataset"):
        found["dataset"] = datasets_for(request).filter(slug=data["dataset"]).first()
        if found["dataset"] is None:
            errors["dataset"] = ["Unknown dataset (or not one you may write to)."]
    if data.get("failure_class"):
        found["failure_class"] = FailureClass.objects.filter(slug=data["failure_class"]).first()
        if found["failure_class"] is None:
            errors["failure_class"] = ["Unknown failure class."]
    if errors:
        raise ValidationError(errors)
    return found


class TraceIncidentCreate(StrictQueryParams, APIView):
    """Open an incident carrying a production trace (then triage -> pinned case, as any incident)."""

    @extend_schema(
        request=TraceIncidentSerializer,
        responses={201: IncidentAcceptedSerializer, **error_responses()},
        parameters=TRACE_PATH,
    )
    def post(self, request: Request, source: str, client_id: str) -> Response:
        require_scope(request, Scope.INCIDENTS_WRITE)
        trace = readable_trace(request, source, client_id)
        serializer = TraceIncidentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data.update(_dataset_and_class(request, data))
        token = deploy_token(request)
        incident = monitoring.trace_to_incident(
            trace,
            **{k: data.get(k) for k in ("title", "severity", "description", "dataset", "failure_class")},
            actor=request.user if request.user.is_authenticated else None,
            reporter=token.created_by if token else None,
            reported_via=f"token {token.name} ({token.prefix})" if token else "",
        )
        body = {"id": incident.pk, "status": incident.status, "title": incident.title}
        return Response(body, status=status.HTTP_201_CREATED)


class TraceCaseCreate(StrictQueryParams, APIView):
    """Add a production trace to a dataset's monitoring tier as a draft case."""

    @extend_schema(
        request=TraceCaseSerializer,
        responses={201: TraceCaseCreatedSerializer, **error_responses()},
        parameters=TRACE_PATH,
    )
    def post(self, request: Request, source: str, client_id: str) -> Response:
        require_scope(request, Scope.CASES_WRITE)
        trace = readable_trace(request, source, client_id)
        serializer = TraceCaseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        found = _dataset_and_class(request, data)
        token = deploy_token(request)
        case = monitoring.trace_to_case(
            trace,
            dataset=found["dataset"],
            failure_class=found["failure_class"],
            key=data["key"],
            actor=request.user if request.user.is_authenticated else None,
            contributor=token_writer(token) if token else None,
        )
        body = {"key": case.key, "dataset": case.dataset.slug, "status": case.status}
        return Response(body, status=status.HTTP_201_CREATED)
