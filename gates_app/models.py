"""Gates and their rules, checks (verdict requests) with their decisions, and deploy tokens."""

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from gates_app import metrics
from gates_app.choices import (
    CheckStatus,
    DecideOn,
    DecisionKind,
    Direction,
    RuleMode,
    RuleStage,
    Scope,
    Severity,
    Verdict,
)

SCOPE_KEYS = ("tier", "failure_class", "risk", "tags")


class GateQuerySet(models.QuerySet):
    def owned_by(self, user: Any) -> "GateQuerySet":
        """Gates ``user`` owns, as the owner or a co-owner."""
        co_owned = Gate.co_owners.through.objects.filter(user=user).values("gate_id")
        return self.filter(models.Q(owner=user) | models.Q(pk__in=co_owned))


class Gate(models.Model):
    """A release gate: owners, approvers, a dataset and the rules that decide a verdict."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_gates")
    co_owners = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="co_owned_gates",
        help_text="Owners besides the owner (like a CODEOWNERS entry): each may change the gate, "
        "override its verdicts and issue its deploy tokens.",
    )
    approvers = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="approver_of_gates")
    required_approvals = models.PositiveSmallIntegerField(
        default=1,
        help_text="Distinct people who must approve a warn verdict before the release is allowed "
        "(never the person who requested the check).",
    )
    dataset = models.ForeignKey("datasets_app.Dataset", on_delete=models.PROTECT, related_name="gates")
    default_target = models.ForeignKey(
        "grading_app.Target",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="gates",
        help_text="Produces the outputs when a check is requested without them.",
    )
    sources = models.ManyToManyField(
        "monitoring_app.Source",
        blank=True,
        related_name="gates",
        help_text="Production trace sources serving this gate's releases: the gate's deploy tokens "
        "with traces:write send to them, and its production rules read them.",
    )
    webhook_url = models.URLField(
        max_length=500, blank=True, help_text="Optional: POSTed the check as JSON on each final verdict."
    )
    warnings_need_approval = models.BooleanField(default=True)
    missing_tolerance = models.FloatField(
        default=0.0,
        help_text="Share of cases in a block rule's scope that may be missing or errored "
        "before the rule is undecided (0 = none may be).",
    )
    baseline_check = models.ForeignKey(
        "Check",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Pinned baseline; empty: the latest check whose release was allowed.",
    )
    production_window_hours = models.PositiveIntegerField(
        default=24,
        help_text="Production rules: how long after a release's first trace its traffic is judged.",
    )
    production_min_traces = models.PositiveIntegerField(
        default=200,
        help_text="Production rules: the verdict is inconclusive until the release (and the one before "
        "it) served this many traces.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(m2m_fields=[approvers, co_owners])
    objects = GateQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(missing_tolerance__gte=0, missing_tolerance__lte=1),
                name="gate_missing_tolerance_is_a_share",
                violation_error_message="Missing tolerance is a share between 0 and 1.",
            ),
            models.CheckConstraint(
                condition=models.Q(required_approvals__gte=1),
                name="gate_required_approvals_at_least_one",
                violation_error_message="A gate requires at least one approval.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # A pinned baseline is a check of this gate: another gate's check compares the
        # candidate with a run of other rules, perhaps of another dataset.
        if self.baseline_check_id is not None:
            gate_id = (
                Check.objects.filter(pk=self.baseline_check_id).values_list("gate_id", flat=True).first()
            )
            if self.pk is None or gate_id != self.pk:
                raise ValidationError(
                    {"baseline_check": f"Check {self.baseline_check_id} is not a check of this gate."}
                )

    def owner_ids(self) -> set[int]:
        """The owner and every co-owner (one query for the co-owners, unless prefetched)."""
        return {self.owner_id, *(u.pk for u in self.co_owners.all())}

    def is_owner(self, user: Any) -> bool:
        return user is not None and user.pk is not None and user.pk in self.owner_ids()


class GateRule(models.Model):
    """One line of a gate's rule table: a metric over a scope, compared one way."""

    gate = models.ForeignKey(Gate, on_delete=models.CASCADE, related_name="rules")
    name = models.CharField(max_length=200)
    position = models.PositiveIntegerField(default=0)
    stage = models.CharField(
        max_length=10,
        choices=RuleStage.choices,
        default=RuleStage.RELEASE,
        help_text="Release rules decide a check; production rules judge the live traffic of a release "
        "that shipped (GET /api/v1/gates/{slug}/production/).",
    )
    # A key into the rule-metric registry (gates_app.metrics), not choices: no migration per metric.
    metric = models.CharField(max_length=32)
    grader = models.ForeignKey(
        "grading_app.Grader", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    scope = models.JSONField(default=dict, blank=True, help_text="tier, failure_class, risk, tags")
    mode = models.CharField(max_length=16, choices=RuleMode.choices, default=RuleMode.ABSOLUTE)
    threshold = models.FloatField(null=True, blank=True)
    direction = models.CharField(max_length=3, choices=Direction.choices, blank=True)
    margin = models.FloatField(default=0.0)
    strict = models.BooleanField(default=False)
    decide_on = models.CharField(max_length=8, choices=DecideOn.choices, default=DecideOn.POINT)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.BLOCK)
    # Calibration a judge must show before its rule can decide (DESIGN.md section 1.2).
    min_kappa = models.FloatField(
        null=True,
        blank=True,
        help_text="Judge rules: Cohen's kappa with human labels the rubric version must reach.",
    )
    min_labels = models.PositiveIntegerField(
        null=True, blank=True, help_text="Judge rules: human labels the rubric version must have."
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["gate", "position", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["gate", "name"],
                name="gate_rule_name_unique",
                violation_error_message="A gate already has a rule with this name.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.stage == RuleStage.PRODUCTION:
            return self._clean_production()
        errors: dict[str, str] = {}
        try:
            spec = metrics.get_metric(self.metric)
        except KeyError as exc:
            raise ValidationError({"metric": str(exc.args[0])}) from None
        if spec.needs_grader and self.grader_id is None:
            errors["grader"] = f"Metric {self.metric} needs a grader."
        if self.mode == RuleMode.ABSOLUTE and self.threshold is None and spec.needs_threshold:
            errors["threshold"] = "An absolute rule needs a threshold."
        if not isinstance(self.scope, dict) or set(self.scope) - set(SCOPE_KEYS):
            errors["scope"] = f"Scope is an object with keys among {', '.join(SCOPE_KEYS)}."
        if self.margin < 0:
            errors["margin"] = "A margin is not negative."
        if self.min_kappa is not None and not -1 <= self.min_kappa <= 1:
            errors["min_kappa"] = "Cohen's kappa lies between -1 and 1."
        if (self.min_kappa is not None or self.min_labels is not None) and not self._judged():
            errors["min_kappa"] = "Calibration (min_kappa, min_labels) applies to rules on a judge grader."
        if errors:
            raise ValidationError(errors)

    def _clean_production(self) -> None:
        from monitoring_app import windows

        errors: dict[str, str] = {}
        spec = windows.METRICS.get(self.metric)
        if spec is None:
            known = ", ".join(sorted(windows.METRICS))
            raise ValidationError({"metric": f"Unknown production metric {self.metric!r} (known: {known})."})
        if spec.needs_grader and self.grader_id is None:
            errors["grader"] = f"Metric {self.metric} needs a grader (one a monitor of the sources runs)."
        if self.mode == RuleMode.ABSOLUTE and self.threshold is None:
            errors["threshold"] = "An absolute rule needs a threshold."
        if self.scope:
            errors["scope"] = "Production rules read the release's whole traffic: no scope."
        if self.strict:
            errors["strict"] = "Production traffic is not paired case by case: strict does not apply."
        if self.margin < 0:
            errors["margin"] = "A margin is not negative."
        if self.min_kappa is not None or self.min_labels is not None:
            errors["min_kappa"] = "Calibration applies to release rules on a judge grader."
        if errors:
            raise ValidationError(errors)

    def _judged(self) -> bool:
        from grading_app.graders import get_kind  # the registry loads custom kinds lazily

        return self.grader is not None and get_kind(self.grader.kind).needs_rubric

    def effective_direction(self) -> str:
        return self.direction or metrics.get_metric(self.metric).direction


class Check(models.Model):
    """One verdict request for a candidate on a gate. The verdict, once decided, never changes."""

    gate = models.ForeignKey(Gate, on_delete=models.PROTECT, related_name="checks")
    candidate = models.CharField(max_length=200)
    run = models.OneToOneField(
        "grading_app.Run", null=True, blank=True, on_delete=models.PROTECT, related_name="gate_check"
    )
    status = models.CharField(max_length=8, choices=CheckStatus.choices, default=CheckStatus.QUEUED)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, default=Verdict.PENDING)
    rule_results = models.JSONField(default=list, blank=True)
    trace_deltas = models.JSONField(default=dict, blank=True)
    baseline = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    metadata = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    requested_by_token = models.ForeignKey(
        "DeployToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="checks"
    )
    requested_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Derived from the verdict and the decisions, kept on the row by the services that
    # change either, so baselines and the API read it without replaying decisions.
    release_allowed = models.BooleanField(default=False)
    # Outputs too large for one request arrive in this many pages (0: in the request itself);
    # the run starts with the last one (gates_app.uploads).
    pages_expected = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["gate", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="check_idempotency_key_unique_per_gate",
                violation_error_message="This idempotency key was already used on this gate.",
            ),
        ]
        indexes = [
            models.Index(fields=["gate", "candidate", "created_at"]),
            models.Index(fields=["gate", "release_allowed", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"check {self.pk} of {self.candidate}"


class CheckDecision(models.Model):
    """An approval of a warn verdict or an owner's override, recorded forever (append-only)."""

    gate_check = models.ForeignKey(Check, on_delete=models.PROTECT, related_name="decisions")
    kind = models.CharField(max_length=16, choices=DecisionKind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # A snapshot: renaming the user does not rewrite the approval trail.
    actor_username = models.CharField(max_length=150)
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["gate_check", "actor"],
                condition=models.Q(kind="approve"),
                name="check_decision_one_approval_per_person",
                violation_error_message="This person already approved this check.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} by {self.actor_id}"


class CheckUploadPage(models.Model):
    """One received page of a check's outputs: its number and fingerprint (the outputs
    themselves went straight into the run), so a page sent twice is recognised."""

    gate_check = models.ForeignKey(Check, on_delete=models.CASCADE, related_name="pages")
    number = models.PositiveIntegerField()
    fingerprint = models.CharField(max_length=64)
    outputs = models.PositiveIntegerField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["gate_check", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["gate_check", "number"],
                name="check_upload_page_unique",
                violation_error_message="This page of the check's outputs was already received.",
            ),
        ]

    def __str__(self) -> str:
        return f"page {self.number} of check {self.gate_check_id}"


class DeployTokenQuerySet(models.QuerySet):
    def usable(self) -> "DeployTokenQuerySet":
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class DeployToken(models.Model):
    """A bearer token: a deploy token (gates + scopes) or, with ``user``, a personal token.

    Only a SHA-256 hash of the secret is stored; the secret is shown once at creation.
    """

    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, unique=True, help_text="Visible part, to recognise it.")
    secret_hash = models.CharField(max_length=64)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="personal_tokens",
        help_text="Set for a personal token: it acts as this user.",
    )
    gates = models.ManyToManyField(Gate, blank=True, related_name="tokens")
    scopes = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Who issued it; a deploy token's writes (cases, incidents, checks) belong to them. "
        "Empty: issued from the server's shell.",
    )
    note = models.TextField(blank=True, help_text="Why the token exists.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revoke_reason = models.TextField(blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = DeployTokenQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_personal(self) -> bool:
        return self.user_id is not None

    def has_scope(self, scope: Scope | str) -> bool:
        return str(scope) in self.scopes

    def identity(self) -> dict[str, Any]:
        """How the audit log names this token (its secret never appears anywhere)."""
        return {"id": self.pk, "name": self.name, "prefix": self.prefix, "created_by": self.created_by_id}
