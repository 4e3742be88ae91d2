"""API views on rubrics: their versions, and who could sign each off (a reviewer's question)."""

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request

from gates_app.api.permissions import deploy_token
from gates_app.api.query import StrictQueryParams
from gates_app.api.schema import error_responses
from grading_app.choices import RubricState
from grading_app.models import Rubric, RubricVersion
from grading_app.services import sign_off_blocker, signers


class RubricVersionSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True)
    can_be_signed_off_by = serializers.SerializerMethodField(
        help_text="Owners of the rubric other than the version's author (empty once decided)."
    )
    sign_off_blocked = serializers.SerializerMethodField(
        help_text="Why nobody can sign the version off (its author is the only owner), or empty."
    )

    class Meta:
        model = RubricVersion
        fields = [
            "number",
            "state",
            "author",
            "model",
            "created_at",
            "can_be_signed_off_by",
            "sign_off_blocked",
        ]
        read_only_fields = fields

    def get_can_be_signed_off_by(self, version: RubricVersion) -> list[str]:
        if version.state not in (RubricState.DRAFT, RubricState.SUBMITTED):
            return []
        return [u.username for u in signers(version)]

    def get_sign_off_blocked(self, version: RubricVersion) -> str:
        return sign_off_blocker(version)


class RubricSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    co_owners = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    versions = RubricVersionSerializer(many=True, read_only=True)

    class Meta:
        model = Rubric
        fields = ["slug", "name", "owner", "co_owners", "versions"]
        read_only_fields = fields


@extend_schema(responses={200: RubricSerializer(many=True), **error_responses()})
class RubricList(StrictQueryParams, generics.ListAPIView):
    """Rubrics with their versions; users only (personal token or session), with view rights."""

    serializer_class = RubricSerializer
    query_params_allowed = ("page",)

    def get_queryset(self) -> QuerySet[Rubric]:
        request: Request = self.request
        if deploy_token(request) is not None:
            raise PermissionDenied("Deploy tokens do not read rubrics; use a personal token.")
        if not request.user.has_perm("grading_app.view_rubric"):
            raise PermissionDenied("You are not allowed to view rubrics.")
        versions = RubricVersion.objects.select_related("author", "rubric__owner").prefetch_related(
            "rubric__co_owners"
        )
        return (
            Rubric.objects.select_related("owner")
            .prefetch_related("co_owners", Prefetch("versions", queryset=versions.order_by("number")))
            .order_by("slug")
        )
