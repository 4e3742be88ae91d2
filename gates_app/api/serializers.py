"""Request validation and response shapes of the public API (DESIGN.md section 6)."""

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from gates_app.choices import CheckStatus, DecisionKind, Outcome, Severity, Verdict
from gates_app.models import Check, Gate, GateRule
from gates_app.services import check_status


class RuleSerializer(serializers.ModelSerializer):
    grader = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = GateRule
        fields = [
            "name",
            "metric",
            "severity",
            "mode",
            "grader",
            "scope",
            "threshold",
            "direction",
            "margin",
            "strict",
            "decide_on",
        ]


class GateSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    dataset = serializers.CharField(source="dataset.slug", read_only=True)
    rules = RuleSerializer(many=True, read_only=True)

    class Meta:
        model = Gate
        fields = ["slug", "name", "owner", "dataset", "rules"]
        read_only_fields = fields  # output only: the schema then marks every field as always present


class CheckRequestSerializer(serializers.Serializer):
    """The body of POST /gates/{slug}/checks/. Output items are validated by grading_app."""

    candidate = serializers.CharField(max_length=200, trim_whitespace=True)
    outputs = serializers.ListField(child=serializers.JSONField(), required=False, allow_null=False)
    metadata = serializers.DictField(required=False, default=dict)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(self.initial_data) - set(self.fields) if isinstance(self.initial_data, dict) else set()
        if unknown:
            raise serializers.ValidationError({key: ["Unknown field."] for key in sorted(unknown)})
        return attrs


class CheckAcceptedSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Check
        fields = ["id", "status", "verdict", "url"]
        read_only_fields = fields

    def get_url(self, check: Check) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:check-detail", args=[check.pk]))

    def to_representation(self, check: Check) -> dict[str, Any]:
        data = super().to_representation(check)
        data["status"] = check_status(check)
        return data


# The next serializers only document shapes built elsewhere (the method fields below and the
# rule table of gates_app.evaluation), so the OpenAPI schema says what clients will read.


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField()


class DecisionSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=DecisionKind.choices)
    by = serializers.CharField(help_text="Username of the approver or owner.")
    at = serializers.DateTimeField()
    reason = serializers.CharField()


class ApprovalSerializer(serializers.Serializer):
    required = serializers.BooleanField(help_text="The verdict blocks the release until someone decides.")
    warnings_need_approval = serializers.BooleanField()
    required_approvals = serializers.IntegerField(
        help_text="Distinct approvers a warn verdict needs (never the requester)."
    )
    approvals = serializers.IntegerField(help_text="Distinct people who approved so far.")
    decisions = DecisionSerializer(many=True)


class RuleResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    metric = serializers.CharField()
    severity = serializers.ChoiceField(choices=Severity.choices)
    outcome = serializers.ChoiceField(choices=Outcome.choices)
    value = serializers.FloatField(allow_null=True)
    baseline = serializers.FloatField(allow_null=True)
    threshold = serializers.FloatField(allow_null=True)
    interval = serializers.ListField(
        child=serializers.FloatField(),
        min_length=2,
        max_length=2,
        allow_null=True,
        help_text="95%: [lo, hi].",
    )
    n = serializers.IntegerField(help_text="Cases measured.")


@extend_schema_field(RuleResultSerializer(many=True))
class RuleResultsField(serializers.JSONField):
    """The stored rule table, passed through as gates_app.evaluation wrote it."""


class CheckSerializer(serializers.ModelSerializer):
    gate = serializers.CharField(source="gate.slug", read_only=True)
    status = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    rules = RuleResultsField(source="rule_results", read_only=True)
    run = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    approval = serializers.SerializerMethodField()
    admin_url = serializers.SerializerMethodField()

    class Meta:
        model = Check
        fields = [
            "id",
            "gate",
            "candidate",
            "status",
            "verdict",
            "release_allowed",
            "progress",
            "rules",
            "trace_deltas",
            "run",
            "approval",
            "admin_url",
            "baseline",
            "created_at",
            "decided_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=CheckStatus.choices))
    def get_status(self, check: Check) -> str:
        return check_status(check)

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, check: Check) -> dict[str, int]:
        run = check.run
        return {"done": run.done_cases if run else 0, "total": run.total_cases if run else 0}

    @extend_schema_field(ApprovalSerializer)
    def get_approval(self, check: Check) -> dict[str, Any]:
        # The username as it was when they decided: a rename does not rewrite the trail.
        decisions = [
            {"kind": d.kind, "by": d.actor_username, "at": d.created_at.isoformat(), "reason": d.reason}
            for d in check.decisions.all()
        ]
        return {
            "required": check.verdict not in (Verdict.PASS, Verdict.PENDING) and not check.release_allowed,
            "warnings_need_approval": check.gate.warnings_need_approval,
            "required_approvals": check.gate.required_approvals,
            "approvals": len({d.actor_id for d in check.decisions.all() if d.kind == DecisionKind.APPROVE}),
            "decisions": decisions,
        }

    def get_admin_url(self, check: Check) -> str:
        return self.context["request"].build_absolute_uri(
            reverse("admin:gates_app_check_change", args=[check.pk])
        )
