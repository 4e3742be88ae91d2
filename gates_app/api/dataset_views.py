"""API views that feed datasets: production incidents and bulk draft cases."""

import json

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app import services as datasets
from datasets_app.choices import CaseStatus, Severity
from datasets_app.importers import ImportFailed, LineError, read_cases
from datasets_app.models import Dataset, FailureClass
from gates_app.api.permissions import deploy_token, require_scope
from gates_app.api.query import StrictQueryParams
from gates_app.api.schema import error_responses
from gates_app.api.serializers import StrictCharField
from gates_app.choices import Scope
from gates_app.models import DeployToken


def token_writer(token: DeployToken) -> AbstractBaseUser:
    """The person a deploy token's case writes belong to: whoever issued it (so they can never
    audit those cases into trusted). A token issued from the shell has nobody to answer for
    its cases, so it may not write them."""
    if token.created_by is None:
        raise PermissionDenied(
            "This token was issued from the server's shell without --as, so its cases would belong "
            "to nobody; issue one with `manage.py create_token NAME --gate SLUG --as USERNAME`."
        )
    return token.created_by


def datasets_for(request: Request) -> QuerySet[Dataset]:
    """A deploy token reaches the datasets of its gates; users reach all (their perms decide)."""
    token = deploy_token(request)
    if token is not None:
        return Dataset.objects.filter(gates__tokens=token).distinct()
    return Dataset.objects.all()


class IncidentSerializer(serializers.Serializer):
    title = StrictCharField(max_length=300)
    severity = serializers.ChoiceField(choices=Severity.choices, default=Severity.MEDIUM)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    input = serializers.DictField(required=False, default=dict)
    output = serializers.JSONField(required=False, allow_null=True, default=None)
    trace = serializers.ListField(child=serializers.DictField(), required=False, default=list)
    source_url = serializers.URLField(required=False, allow_blank=True, default="", max_length=500)
    dataset = serializers.SlugField(required=False, allow_null=True, default=None)
    failure_class = serializers.SlugField(required=False, allow_null=True, default=None)


class IncidentAcceptedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    title = serializers.CharField()


class IncidentCreate(StrictQueryParams, APIView):
    @extend_schema(
        request=IncidentSerializer, responses={201: IncidentAcceptedSerializer, **error_responses()}
    )
    def post(self, request: Request) -> Response:
        require_scope(request, Scope.INCIDENTS_WRITE)
        serializer = IncidentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        errors = {}
        if data["dataset"]:
            data["dataset"] = datasets_for(request).filter(slug=data["dataset"]).first()
            if data["dataset"] is None:
                errors["dataset"] = ["Unknown dataset."]
        if data["failure_class"]:
            data["failure_class"] = FailureClass.objects.filter(slug=data["failure_class"]).first()
            if data["failure_class"] is None:
                errors["failure_class"] = ["Unknown failure class."]
        if errors:
            raise ValidationError(errors)
        token = deploy_token(request)
        incident = datasets.report_incident(
            **data,
            actor=request.user if request.user.is_authenticated else None,
            reporter=token.created_by if token else None,
            reported_via=f"token {token.name} ({token.prefix})" if token else "api",
        )
        body = {"id": incident.pk, "status": incident.status, "title": incident.title}
        return Response(body, status=status.HTTP_201_CREATED)


class CasesRequestSerializer(serializers.Serializer):
    cases = serializers.ListField(child=serializers.DictField(), allow_empty=False, max_length=10_000)
    failure_class = serializers.SlugField(required=False, help_text="For cases that name none.")


class CasesCreatedSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    keys = serializers.ListField(child=serializers.CharField())


def _api_errors(errors: list[LineError]) -> dict[str, list[str]]:
    """Importer line numbers are 1-based positions in the list: name them as cases[i].field."""
    details: dict[str, list[str]] = {}
    for error in errors:
        where = f"cases[{error.line - 1}].{error.field}" if error.line > 0 else "cases"
        details.setdefault(where, []).append(error.message)
    return details


class DatasetCasesCreate(StrictQueryParams, APIView):
    @extend_schema(
        request=CasesRequestSerializer, responses={201: CasesCreatedSerializer, **error_responses()}
    )
    def post(self, request: Request, slug: str) -> Response:
        require_scope(request, Scope.CASES_WRITE)
        dataset = get_object_or_404(datasets_for(request), slug=slug)
        serializer = CasesRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        items = serializer.validated_data["cases"]
        not_draft = {
            f"cases[{i}].status": ["The API adds drafts: leave status out or use draft."]
            for i, item in enumerate(items)
            if item.get("status") not in (None, CaseStatus.DRAFT)
        }
        if not_draft:
            raise ValidationError(not_draft)
        fallback = None
        if serializer.validated_data.get("failure_class"):
            fallback = FailureClass.objects.filter(slug=serializer.validated_data["failure_class"]).first()
            if fallback is None:
                raise ValidationError({"failure_class": ["Unknown failure class."]})
        # The same parser and checks as file imports, one "line" per item.
        jsonl = "\n".join(json.dumps(item) for item in items).encode()
        token = deploy_token(request)
        try:
            # Shape errors and conflicts with the database, all listed in one answer.
            created = datasets.import_cases(
                dataset,
                read_cases(jsonl, "jsonl"),
                failure_class=fallback,
                actor=request.user if request.user.is_authenticated else None,
                contributor=token_writer(token) if token else None,
                source_name=f"api token {token.name} ({token.prefix})" if token else "api",
            )
        except ImportFailed as exc:
            raise ValidationError(_api_errors(exc.errors)) from None
        body = {"created": len(created), "keys": [case.key for case in created]}
        return Response(body, status=status.HTTP_201_CREATED)
