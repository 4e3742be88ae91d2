"""Request validation and response shapes of the public API (DESIGN.md section 6)."""

from typing import Any

from django.core.validators import RegexValidator
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from gates_app.api.schema import OUTPUT_ITEM_SCHEMA, TRACE_DELTAS_SCHEMA
from gates_app.choices import (
    PRODUCTION_VERDICTS,
    CheckStatus,
    DecisionKind,
    Direction,
    Outcome,
    RuleMode,
    Severity,
    Verdict,
)
from gates_app.models import Check, Gate, GateRule
from gates_app.services import check_status
from gates_app.uploads import upload_state
from grading_app.models.runs import MAX_TRIALS

MISSING_SHOWN = 50


class RuleSerializer(serializers.ModelSerializer):
    grader = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = GateRule
        fields = [
            "stage",
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


class StrictCharField(serializers.CharField):
    """Text only: DRF's CharField would take 42 as "42"; and never only whitespace (the schema
    says so with a pattern, so a client knows before it asks)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators.append(RegexValidator(r"\S", "Must not be blank."))

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be text.")
        return super().to_internal_value(data)


@extend_schema_field({"type": "array", "items": OUTPUT_ITEM_SCHEMA})
class OutputsField(serializers.ListField):
    """The submitted outputs; each item is validated by grading_app.outputs (paths named)."""

    child = serializers.JSONField()


class CheckRequestSerializer(serializers.Serializer):
    """The body of POST /gates/{slug}/checks/. Output items are validated by grading_app."""

    candidate = StrictCharField(max_length=200, trim_whitespace=True)
    outputs = OutputsField(required=False, allow_null=False)
    metadata = serializers.DictField(required=False, default=dict)
    outputs_pages = serializers.IntegerField(
        required=False,
        min_value=2,
        max_value=100_000,
        help_text="Outputs too large for one request: `outputs` is page 1 of this many; send the "
        "others to POST /checks/{id}/outputs/. The run starts with the last page.",
    )
    trials = serializers.IntegerField(
        required=False,
        default=1,
        min_value=1,
        max_value=MAX_TRIALS,
        help_text="Without outputs: times the gate's target runs each case (pass^k, consistency). "
        "Submitted outputs say their own `trial` instead.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(self.initial_data) - set(self.fields) if isinstance(self.initial_data, dict) else set()
        if unknown:
            raise serializers.ValidationError({key: ["Unknown field."] for key in sorted(unknown)})
        return attrs


class MissingCasesSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Cases of the run that produced nothing to judge.")
    keys = serializers.ListField(child=serializers.CharField(), help_text="The first 50 of them, by key.")


class UploadSerializer(serializers.Serializer):
    pages = serializers.IntegerField(help_text="Pages the outputs come in.")
    received = serializers.IntegerField(help_text="Pages received so far.")
    complete = serializers.BooleanField(help_text="All pages arrived: the run has started.")


class CheckAcceptedSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    upload = serializers.SerializerMethodField(required=False)

    class Meta:
        model = Check
        fields = ["id", "status", "verdict", "url", "upload"]
        read_only_fields = fields

    @extend_schema_field(UploadSerializer(allow_null=True))
    def get_upload(self, check: Check) -> dict[str, Any] | None:
        return upload_state(check)

    def get_url(self, check: Check) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:check-detail", args=[check.pk]))

    def to_representation(self, check: Check) -> dict[str, Any]:
        data = super().to_representation(check)
        data["status"] = check_status(check)
        if data["upload"] is None:
            del data["upload"]  # only a check whose outputs come in pages has one
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
    mode = serializers.ChoiceField(choices=RuleMode.choices)
    grader = serializers.CharField(allow_null=True)
    scope = serializers.DictField(help_text="tier, failure_class, risk, tags")
    direction = serializers.ChoiceField(choices=Direction.choices)
    margin = serializers.FloatField(allow_null=True, help_text="no_regression rules: allowed drop.")
    missing = serializers.IntegerField(help_text="Cases in scope without an output (or not run).")
    errored = serializers.IntegerField(help_text="Cases in scope whose measurement errored.")
    note = serializers.CharField(allow_blank=True, help_text="Why the rule is undecided, or what failed.")
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
    paired_difference = serializers.FloatField(
        required=False, help_text="no_regression rules: mean paired difference (improvement > 0)."
    )
    difference = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="Production no_regression rules: candidate minus baseline; interval is its 95% interval.",
    )
    cases_failing = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="pinned_pass: pinned cases that failed."
    )
    cases_undecided = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="pinned_pass: pinned cases that cannot be graded.",
    )


@extend_schema_field(RuleResultSerializer(many=True))
class RuleResultsField(serializers.JSONField):
    """The stored rule table, passed through as gates_app.evaluation wrote it."""


class ProductionWindowSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class ProductionVerdictSerializer(serializers.Serializer):
    """GET /api/v1/gates/{slug}/production/: a shipped release's live traffic, judged."""

    gate = serializers.CharField()
    candidate = serializers.CharField()
    baseline = serializers.CharField(allow_null=True, help_text="The release compared with.")
    verdict = serializers.ChoiceField(choices=PRODUCTION_VERDICTS)
    window = ProductionWindowSerializer(allow_null=True, help_text="The candidate's traffic judged.")
    traces = serializers.IntegerField(help_text="Candidate traces in the window.")
    baseline_traces = serializers.IntegerField()
    min_traces = serializers.IntegerField(help_text="Below this on either side, every rule is undecided.")
    note = serializers.CharField(allow_blank=True)
    rules = RuleResultSerializer(many=True)


@extend_schema_field(TRACE_DELTAS_SCHEMA)
class TraceDeltasField(serializers.JSONField):
    """Trace deltas as gates_app.trace_deltas wrote them."""


class CheckSerializer(serializers.ModelSerializer):
    gate = serializers.CharField(source="gate.slug", read_only=True)
    trace_deltas = TraceDeltasField(read_only=True)
    status = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    rules = RuleResultsField(source="rule_results", read_only=True)
    run = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    approval = serializers.SerializerMethodField()
    admin_url = serializers.SerializerMethodField()
    upload = serializers.SerializerMethodField()
    missing_cases = serializers.SerializerMethodField()

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
            "upload",
            "missing_cases",
        ]
        read_only_fields = fields

    @extend_schema_field(MissingCasesSerializer)
    def get_missing_cases(self, check: Check) -> dict[str, Any]:
        """Missing or errored cases by key, so an inconclusive verdict says what to fix."""
        run = check.run
        if run is None or not run.error_cases:
            return {"count": 0, "keys": []}
        rows = run.results.exclude(missing=False, error="").order_by("case__key")
        return {
            "count": run.error_cases,
            "keys": list(rows.values_list("case__key", flat=True)[:MISSING_SHOWN]),
        }

    @extend_schema_field(UploadSerializer(allow_null=True))
    def get_upload(self, check: Check) -> dict[str, Any] | None:
        return upload_state(check)

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
