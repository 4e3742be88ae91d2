"""Datasets of eval cases, split into trusted and monitoring tiers, each case in a failure class."""

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from datasets_app.choices import (
    CaseSource,
    CaseStatus,
    IncidentStatus,
    PinnedChange,
    RequestStatus,
    Risk,
    Severity,
    Tier,
)

UNCLASSIFIED = "unclassified"  # where imports without a failure class land, flagged for triage


class FailureClass(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(
        blank=True, help_text="What failing looks like for this class, in plain words."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["slug"]
        verbose_name_plural = "failure classes"

    def __str__(self) -> str:
        return self.name


class Dataset(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="owned_datasets",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class CaseQuerySet(models.QuerySet):
    def active(self) -> "CaseQuerySet":
        return self.filter(status=CaseStatus.ACTIVE)

    def in_tier(self, tier: str | None) -> "CaseQuerySet":
        return self.filter(tier=tier) if tier else self


class Case(models.Model):
    """One eval case: an input, what success looks like, and the failure class it probes."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="cases")
    key = models.CharField(
        max_length=200, help_text="Stable id within the dataset; submitted outputs match on it."
    )
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.MONITORING)
    status = models.CharField(max_length=16, choices=CaseStatus.choices, default=CaseStatus.DRAFT)
    failure_class = models.ForeignKey(FailureClass, on_delete=models.PROTECT, related_name="cases")
    risk = models.CharField(max_length=8, choices=Risk.choices, default=Risk.NORMAL)
    input = models.JSONField(help_text='Chat messages and/or variables, e.g. {"messages": [...]}')
    expected = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=16, choices=CaseSource.choices, default=CaseSource.AUTHORED)
    context = models.JSONField(
        default=dict,
        blank=True,
        help_text="What was observed where the case came from (a production trace's output and steps): "
        "for the people reviewing it; never sent to a target or a grader.",
    )
    pinned = models.BooleanField(default=False, help_text="Must pass in every later release.")
    contributed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="contributed_cases",
    )
    audited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audited_cases",
    )
    audited_at = models.DateTimeField(null=True, blank=True)
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Who last changed the content.",
    )
    # Everyone who changed the content since the last audit: like the contributor, none of
    # them may audit it into trusted. Ids, reset by each audit.
    editors_since_audit = models.JSONField(default=list, blank=True)
    review_note = models.TextField(
        blank=True, help_text="Why a reviewer returned the case to its author (until its next audit)."
    )
    revision = models.PositiveIntegerField(default=1)
    incident = models.ForeignKey(
        "Incident",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="regression_cases",
        help_text="The production incident this case was made from.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()
    objects = CaseQuerySet.as_manager()

    # What a case says; changing any of it is a new revision (and re-review if trusted).
    CONTENT_FIELDS = ("input", "expected", "failure_class", "risk", "tags", "pinned")
    GOVERNANCE_FIELDS = ("status", "audited_by", "audited_at", "editors_since_audit", "edited_by")

    class Meta:
        ordering = ["dataset", "key"]
        permissions = [
            ("submit_case", "Can submit cases for review"),
            ("audit_case", "Can audit cases (and promote them to trusted)"),
            ("retire_case", "Can retire, demote and restore cases"),
            ("import_cases", "Can import and export cases"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "key"],
                name="case_key_unique_in_dataset",
                violation_error_message="A case with this key already exists in this dataset.",
            ),
        ]
        indexes = [models.Index(fields=["dataset", "status", "tier"])]

    def __str__(self) -> str:
        return self.key


class Incident(models.Model):
    """A failure seen in production, triaged in the admin and turned into a pinned case."""

    title = models.CharField(max_length=300)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.MEDIUM)
    status = models.CharField(max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.NEW)
    description = models.TextField(blank=True, help_text="What happened and why it is wrong.")
    input = models.JSONField(default=dict, blank=True, help_text="What the user sent, if known.")
    output = models.JSONField(null=True, blank=True, help_text="What the system answered.")
    trace = models.JSONField(default=list, blank=True)
    source_url = models.URLField(max_length=500, blank=True)
    dataset = models.ForeignKey(
        Dataset,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="incidents",
        help_text="Dataset the regression case should go to, if known.",
    )
    failure_class = models.ForeignKey(
        FailureClass, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents"
    )
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reported_incidents",
    )
    reported_via = models.CharField(max_length=200, blank=True, help_text="Token or system that reported it.")
    triage_note = models.TextField(blank=True)
    triaged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    triaged_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        permissions = [("triage_incident", "Can triage incidents and convert them to cases")]

    def __str__(self) -> str:
        return self.title


class PinnedCaseRequest(models.Model):
    """A request to retire or unpin a pinned case; a second person confirms or declines it.

    A pinned case is a promise that an incident stays fixed, so no single person ends it.
    """

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="pinned_requests")
    change = models.CharField(max_length=8, choices=PinnedChange.choices)
    reason = models.TextField()
    status = models.CharField(max_length=10, choices=RequestStatus.choices, default=RequestStatus.OPEN)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["case"],
                condition=models.Q(status="open"),
                name="pinned_request_one_open_per_case",
                violation_error_message="This case already has an open request.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_change_display()} {self.case.key}" if self.case_id else "pinned case request"
