"""Public API v1 views: thin wrappers over gates_app.services."""

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gates_app import services
from gates_app.api import bodies
from gates_app.api.permissions import deploy_token, require_scope, visible_gates
from gates_app.api.query import StrictQueryParams
from gates_app.api.schema import error_responses
from gates_app.api.serializers import (
    CheckAcceptedSerializer,
    CheckRequestSerializer,
    CheckSerializer,
    GateSerializer,
    OutputsField,
    ProductionVerdictSerializer,
    StrictCharField,
)
from gates_app.choices import Scope
from gates_app.models import Check, GateRule
from gates_app.production import production_verdict
from gates_app.tokens import Lookahead
from gates_app.uploads import add_outputs_page

READ_SCOPES = (Scope.CHECKS_READ, Scope.CHECKS_WRITE)


def checks_for(request: Request) -> QuerySet[Check]:
    """Checks of the gates the requester can see, with what the serializer reads."""
    return (
        Check.objects.filter(gate__in=visible_gates(request))
        .select_related("gate", "run")
        .prefetch_related("decisions")
    )


@extend_schema(responses={200: GateSerializer(many=True), **error_responses()})
class GateList(StrictQueryParams, generics.ListAPIView):
    serializer_class = GateSerializer
    query_params_allowed = ("page",)

    def get_queryset(self) -> QuerySet:
        require_scope(self.request, *READ_SCOPES)
        return (
            visible_gates(self.request)
            .select_related("owner", "dataset")
            .prefetch_related(Prefetch("rules", queryset=GateRule.objects.select_related("grader")))
            .order_by("slug")
        )


class CheckCreate(StrictQueryParams, APIView):
    @extend_schema(
        request=CheckRequestSerializer,
        responses={202: CheckAcceptedSerializer, **error_responses(409, 413, 422)},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
    )
    def post(self, request: Request, slug: str) -> Response:
        require_scope(request, Scope.CHECKS_WRITE)
        gate = get_object_or_404(visible_gates(request), slug=slug)
        serializer = CheckRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        check, _ = services.request_check(
            gate=gate,
            candidate=serializer.validated_data["candidate"],
            outputs=serializer.validated_data.get("outputs"),
            metadata=serializer.validated_data["metadata"],
            idempotency_key=request.headers.get("Idempotency-Key", "").strip()[:200],
            token=deploy_token(request),
            actor=request.user if request.user.is_authenticated else None,
            outputs_pages=serializer.validated_data.get("outputs_pages", 0),
            trials=serializer.validated_data["trials"],
        )
        check = checks_for(request).get(pk=check.pk)
        body = CheckAcceptedSerializer(check, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


class OutputsPageSerializer(serializers.Serializer):
    page = serializers.IntegerField(
        min_value=1, max_value=100_000, help_text="Page number, 2 to outputs_pages."
    )
    outputs = OutputsField(allow_empty=True)


class CheckOutputsPage(StrictQueryParams, APIView):
    """One more page of a paged check's outputs (see outputs_pages); the last starts the run."""

    @extend_schema(
        request=OutputsPageSerializer, responses={200: CheckAcceptedSerializer, **error_responses(413, 422)}
    )
    def post(self, request: Request, pk: int) -> Response:
        require_scope(request, Scope.CHECKS_WRITE)
        check = get_object_or_404(checks_for(request), pk=pk)
        serializer = OutputsPageSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        add_outputs_page(
            check,
            number=serializer.validated_data["page"],
            outputs=serializer.validated_data["outputs"],
            token=deploy_token(request),
            actor=request.user if request.user.is_authenticated else None,
        )
        check = checks_for(request).get(pk=pk)
        return Response(CheckAcceptedSerializer(check, context={"request": request}).data)


@extend_schema(responses={200: CheckSerializer, **error_responses()})
class CheckDetail(StrictQueryParams, generics.RetrieveAPIView):
    """A check. Deploy scripts poll this until it is decided, then often keep asking: a decided
    check's body is served from the cache (gates_app.api.bodies), keyed by everything it can
    still change with, so a decision or a gate setting takes effect on the next request."""

    serializer_class = CheckSerializer
    auth_lookahead_row: tuple[Any, ...] | None = None

    def auth_lookahead(self) -> Lookahead:
        """A deploy token's query also fetches this check's state (gates_app.api.authentication)."""
        return bodies.deploy_token_lookahead(self.kwargs["pk"])

    def get_queryset(self) -> QuerySet:
        require_scope(self.request, *READ_SCOPES)
        return checks_for(self.request)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        require_scope(request, *READ_SCOPES)
        if deploy_token(request) is not None and self.auth_lookahead_row is not None:
            state = bodies.state_from_lookahead(self.auth_lookahead_row)
        else:  # a user (personal token or session): visibility goes through the auth backends
            state = bodies.visible_decided_state(request, self.kwargs["pk"])
        if state is None:
            raise NotFound()
        if state.key is None:  # not decided yet: its body changes as the run goes
            return super().retrieve(request, *args, **kwargs)
        body = bodies.cached(state.key)
        if body is None:
            body = super().retrieve(request, *args, **kwargs).data
            bodies.keep(state.key, body)
        return Response(bodies.for_request(body, request, state.pk))


class GateVerdict(StrictQueryParams, APIView):
    query_params_allowed = ("candidate",)

    @extend_schema(
        responses={200: CheckSerializer, **error_responses()},
        parameters=[OpenApiParameter("candidate", str, required=True)],
    )
    def get(self, request: Request, slug: str) -> Response:
        require_scope(request, *READ_SCOPES)
        gate = get_object_or_404(visible_gates(request), slug=slug)
        candidate = request.query_params.get("candidate", "").strip()
        if not candidate:
            raise ValidationError({"candidate": ["Required: the candidate id."]})
        check = (
            checks_for(request).filter(gate=gate, candidate=candidate).order_by("-created_at", "-pk").first()
        )
        if check is None:
            raise NotFound(f"No check of candidate {candidate!r} on gate {slug!r}.")
        return Response(CheckSerializer(check, context={"request": request}).data)


class GateProduction(StrictQueryParams, APIView):
    """The post-release verdict: may the shipped candidate stay, on the evidence of its traffic?"""

    query_params_allowed = ("candidate", "baseline")

    @extend_schema(
        responses={200: ProductionVerdictSerializer, **error_responses()},
        parameters=[
            OpenApiParameter("candidate", str, required=True, description="The release that shipped."),
            OpenApiParameter(
                "baseline", str, description="The release to compare with (default: the one before)."
            ),
        ],
    )
    def get(self, request: Request, slug: str) -> Response:
        require_scope(request, *READ_SCOPES)
        gate = get_object_or_404(visible_gates(request), slug=slug)
        candidate = request.query_params.get("candidate", "").strip()
        if not candidate:
            raise ValidationError({"candidate": ["Required: the candidate id."]})
        baseline = request.query_params.get("baseline", "").strip() or None
        return Response(production_verdict(gate, candidate, baseline=baseline))


class DecisionRequestSerializer(serializers.Serializer):
    reason = StrictCharField(max_length=5000, trim_whitespace=True)


class _CheckDecision(StrictQueryParams, APIView):
    """POST a decision on a check as a user; deploy tokens can never decide."""

    decide = None

    @extend_schema(request=DecisionRequestSerializer, responses={200: CheckSerializer, **error_responses()})
    def post(self, request: Request, pk: int) -> Response:
        check = get_object_or_404(checks_for(request), pk=pk)
        if deploy_token(request) is not None:
            raise PermissionDenied("Deploy tokens cannot approve or override; use a personal token.")
        serializer = DecisionRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.decide(check, actor=request.user, reason=serializer.validated_data["reason"])
        check = checks_for(request).get(pk=pk)
        return Response(CheckSerializer(check, context={"request": request}).data)


class CheckApprove(_CheckDecision):
    decide = staticmethod(services.approve_check)


class CheckOverride(_CheckDecision):
    decide = staticmethod(services.override_check)


class CancelRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class CheckCancel(StrictQueryParams, APIView):
    """Stop a running check: its verdict becomes inconclusive."""

    @extend_schema(request=CancelRequestSerializer, responses={200: CheckSerializer, **error_responses()})
    def post(self, request: Request, pk: int) -> Response:
        require_scope(request, Scope.CHECKS_WRITE)
        check = get_object_or_404(checks_for(request), pk=pk)
        serializer = CancelRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.cancel_check(
            check,
            actor=request.user if request.user.is_authenticated else None,
            token=deploy_token(request),
            reason=serializer.validated_data["reason"],
        )
        check = checks_for(request).get(pk=pk)
        return Response(CheckSerializer(check, context={"request": request}).data)
