"""Production traffic: the sources that send it and the trace records they sent."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from simple_history.models import HistoricalRecords

from monitoring_app.choices import Reference, ReviewStatus, SampleStatus, Thumbs, TraceOrigin


class Source(models.Model):
    """One application (or one deployment of it) that sends production traces.

    Redaction rules run on every record before it is stored, so what a source sends never
    reaches the database unredacted; retention bounds how long its traces are kept.
    """

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_trace_sources"
    )
    redaction = models.JSONField(
        default=list,
        blank=True,
        help_text='Rules run before storage: [{"field": "output", "pattern": "<regex>", '
        '"replacement": "[email]"}]; field is input, output, trace, metadata, feedback or * (all).',
    )
    retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Traces older than this are purged (empty: EVALGATE_TRACE_RETENTION_DAYS).",
    )
    rollup_epoch = models.PositiveBigIntegerField(
        default=0,
        editable=False,
        help_text="Bumped when traces land in (or leave) windows already rolled up: older rollups "
        "of the source's monitors stop counting (monitoring_app.rollups).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(excluded_fields=["rollup_epoch"])

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        from monitoring_app.redaction import compile_rules

        try:
            compile_rules(self.redaction)
        except ValueError as exc:
            raise ValidationError({"redaction": str(exc)}) from None


class Trace(models.Model):
    """One production request as the source reported it (redacted). Never edited; purged by age."""

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="traces")
    client_id = models.CharField(max_length=200, help_text="The sender's id: the same id is stored once.")
    time = models.DateTimeField(help_text="When the request was served.")
    received_at = models.DateTimeField(auto_now_add=True)
    release = models.CharField(max_length=200, blank=True, help_text="The candidate id that served it.")
    origin = models.CharField(max_length=8, choices=TraceOrigin.choices, default=TraceOrigin.API)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    trace = models.JSONField(default=list, blank=True)
    # The production signals of DESIGN.md section 6, as columns so windows aggregate in SQL.
    ttft_ms = models.FloatField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost_usd = models.FloatField(null=True, blank=True)
    retries = models.PositiveIntegerField(null=True, blank=True)
    refused = models.BooleanField(null=True, blank=True)
    escalated = models.BooleanField(null=True, blank=True)
    # True when the value above was filled in at ingestion by grading_app.detectors because the
    # source did not report it (see CaseResult). db_default: raw inserts (benchmarks) need none.
    refused_detected = models.BooleanField(
        default=False, db_default=False, help_text="refused was detected, not reported."
    )
    escalated_detected = models.BooleanField(
        default=False, db_default=False, help_text="escalated was detected, not reported."
    )
    tool_calls = models.PositiveIntegerField(default=0)
    trace_steps = models.PositiveIntegerField(default=0)
    thumbs = models.CharField(max_length=4, choices=Thumbs.choices, blank=True)
    feedback_score = models.FloatField(null=True, blank=True)
    feedback_comment = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-time", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "client_id"],
                name="trace_client_id_unique_per_source",
                violation_error_message="A source sends each trace id once.",
            ),
            models.CheckConstraint(
                condition=models.Q(feedback_score__isnull=True)
                | models.Q(feedback_score__gte=0, feedback_score__lte=1),
                name="trace_feedback_score_0_1",
                violation_error_message="A feedback score is between 0 and 1.",
            ),
        ]
        # Every monitor, drift and verdict query is "this source (and release), this time window";
        # no index on time alone: the planner would walk it for "the first trace of a release"
        # and read most of the table before meeting the release.
        indexes = [
            models.Index(fields=["source", "time"], name="trace_source_time"),
            models.Index(fields=["source", "release", "time"], name="trace_source_release_time"),
        ]

    def __str__(self) -> str:
        return self.client_id


class PendingSpan(models.Model):
    """An OTLP span (redacted, decoded) waiting for the rest of its trace.

    Exporters send the spans of one trace in several batches as they end; a record is
    assembled when the root span arrives, or by the periodic job once the trace went quiet.
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="pending_spans")
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    span = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "trace_id", "span_id"],
                name="pending_span_unique",
                violation_error_message="A span is held once.",
            ),
        ]
        indexes = [models.Index(fields=["received_at"], name="pending_span_received")]

    def __str__(self) -> str:
        return f"{self.trace_id}/{self.span_id}"


class Monitor(models.Model):
    """Online grading of one slice of production traffic, with drift alerts over time windows.

    Sampling is deterministic (a hash of the monitor and the trace id), so the same trace is
    sampled or not whatever the order or the number of times it arrives.
    """

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_monitors"
    )
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="monitors")
    release = models.CharField(
        max_length=200, blank=True, help_text="Only traffic served by this release (empty: every release)."
    )
    metadata_filter = models.JSONField(
        default=dict,
        blank=True,
        help_text='Only traces whose metadata has each of these values, e.g. {"route": "refunds"}.',
    )
    sample_rate = models.FloatField(default=0.1, help_text="Share of matching traces graded (0 to 1).")
    graders = models.ManyToManyField(
        "grading_app.Grader",
        blank=True,
        related_name="monitors",
        help_text="Code graders, and judges whose rubric has an approved version.",
    )
    expected = models.JSONField(
        default=dict,
        blank=True,
        help_text="What success looks like for every watched trace, in the graders' expected keys "
        '(e.g. {"forbidden_tools": ["issue_refund"]}).',
    )
    dataset = models.ForeignKey(
        "datasets_app.Dataset",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="monitors",
        help_text="The dataset whose monitoring tier this traffic feeds; its owner reviews the traces "
        "that fail or get negative feedback.",
    )
    judge_calls_per_hour = models.PositiveIntegerField(
        default=100, help_text="Live judge calls this monitor may make in any hour (cached answers are free)."
    )
    window_minutes = models.PositiveIntegerField(default=60, help_text="Length of one drift window.")
    reference = models.CharField(max_length=8, choices=Reference.choices, default=Reference.PREVIOUS)
    reference_start = models.DateTimeField(null=True, blank=True, help_text="Pinned reference window.")
    reference_end = models.DateTimeField(null=True, blank=True)
    min_window_traces = models.PositiveIntegerField(
        default=50, help_text="A window with fewer measured traces is never compared (no alert on a trickle)."
    )
    webhook_url = models.URLField(max_length=500, blank=True, help_text="POSTed each alert as JSON.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(m2m_fields=[graders])

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(sample_rate__gte=0, sample_rate__lte=1),
                name="monitor_sample_rate_is_a_share",
                violation_error_message="A sample rate is a share between 0 and 1.",
            ),
            models.CheckConstraint(
                condition=models.Q(window_minutes__gte=1),
                name="monitor_window_at_least_a_minute",
                violation_error_message="A window lasts at least a minute.",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        errors = {}
        if not isinstance(self.metadata_filter, dict):
            errors["metadata_filter"] = "A metadata filter is a JSON object of key: value."
        if not isinstance(self.expected, dict):
            errors["expected"] = "Expected is a JSON object (the graders' expected keys)."
        if self.reference == Reference.PINNED and not (
            self.reference_start and self.reference_end and self.reference_start < self.reference_end
        ):
            errors["reference_start"] = "A pinned reference needs a start before its end."
        if errors:
            raise ValidationError(errors)


class AlertRule(models.Model):
    """Alert when a monitor's current window is worse than its reference beyond a margin, with
    95% confidence: the whole interval of the difference lies past the margin."""

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=200)
    # A key into monitoring_app.windows.METRICS (no migration per metric).
    metric = models.CharField(max_length=32)
    grader = models.ForeignKey(
        "grading_app.Grader", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    failure_class = models.SlugField(
        max_length=64, blank=True, help_text="pass_rate only: traces of this failure class (metadata)."
    )
    margin = models.FloatField(
        default=0.0, help_text="How much worse than the reference is tolerated, in the metric's unit."
    )
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["monitor", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["monitor", "name"],
                name="alert_rule_name_unique",
                violation_error_message="A monitor already has an alert rule with this name.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from monitoring_app import windows

        errors = {}
        spec = windows.METRICS.get(self.metric)
        if spec is None:
            errors["metric"] = (
                f"Unknown metric {self.metric!r} (known: {', '.join(sorted(windows.METRICS))})."
            )
        elif spec.needs_grader and self.grader_id is None:
            errors["grader"] = f"Metric {self.metric} needs a grader."
        if self.margin < 0:
            errors["margin"] = "A margin is not negative."
        if errors:
            raise ValidationError(errors)


class Alert(models.Model):
    """A window that drifted: what was measured, against what, and how sure. Never edited except
    to be acknowledged; one per rule and window."""

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="alerts")
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    metric = models.CharField(max_length=32)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    reference_start = models.DateTimeField()
    reference_end = models.DateTimeField()
    value = models.FloatField()
    reference_value = models.FloatField()
    difference = models.FloatField(help_text="value - reference")
    interval = models.JSONField(help_text="95% interval of the difference.")
    n = models.PositiveIntegerField()
    reference_n = models.PositiveIntegerField()
    fired_at = models.DateTimeField(auto_now_add=True)
    webhook_status = models.CharField(max_length=200, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-window_start", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "window_start"],
                name="alert_once_per_rule_window",
                violation_error_message="A rule alerts once per window.",
            ),
        ]
        indexes = [models.Index(fields=["monitor", "window_start"], name="alert_monitor_window")]

    def __str__(self) -> str:
        return f"{self.rule} at {self.window_start:%Y-%m-%d %H:%M}"


class MonitorSample(models.Model):
    """A trace a monitor sampled: graded online, and queued for review when it failed or got
    negative feedback. ``time`` and ``release`` copy the trace's, so windows aggregate here."""

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="samples")
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="samples")
    time = models.DateTimeField()
    release = models.CharField(max_length=200, blank=True)
    failure_class = models.SlugField(max_length=64, blank=True)
    in_sample = models.BooleanField(
        default=True,
        help_text="Drawn by the sample rate. Traces with negative feedback are graded (and reviewed) "
        "too, but kept out of the windows' pass rates so they do not bias them.",
    )
    status = models.CharField(max_length=8, choices=SampleStatus.choices, default=SampleStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    leased_until = models.DateTimeField(
        null=True, blank=True, help_text="Claimed by a grading job until then (another may take it after)."
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    graded_at = models.DateTimeField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True, help_text="Every decided grade passed.")
    review = models.CharField(max_length=10, choices=ReviewStatus.choices, blank=True, default="")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-time", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["monitor", "trace"],
                name="monitor_sample_once",
                violation_error_message="A monitor samples a trace once.",
            ),
        ]
        indexes = [
            models.Index(fields=["monitor", "time"], name="sample_monitor_time"),
            models.Index(fields=["status", "created_at"], name="sample_status_created"),
            models.Index(fields=["monitor", "review"], name="sample_monitor_review"),
        ]

    def __str__(self) -> str:
        return f"sample {self.pk} of monitor {self.monitor_id}"


class TraceGrade(models.Model):
    """One grader's answer on one sampled trace (the production twin of grading_app.Grade)."""

    sample = models.ForeignKey(MonitorSample, on_delete=models.CASCADE, related_name="grades")
    grader = models.ForeignKey("grading_app.Grader", on_delete=models.PROTECT, related_name="+")
    rubric_version = models.ForeignKey(
        "grading_app.RubricVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    score = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    rationale = models.TextField(blank=True)
    error = models.TextField(blank=True)
    raw_response = models.JSONField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.FloatField(default=0.0)
    cached = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sample", "grader"]
        constraints = [
            models.UniqueConstraint(
                fields=["sample", "grader"],
                name="trace_grade_once",
                violation_error_message="A grader grades a sample once.",
            ),
        ]
        indexes = [models.Index(fields=["grader", "created_at"], name="trace_grade_grader_created")]

    def __str__(self) -> str:
        return f"{self.grader_id} on {self.sample_id}"


class WindowRollup(models.Model):
    """One series of a monitor's charts over one settled window, as computed from its traces
    (monitoring_app.rollups): a chart reads these instead of scanning a day of traffic again.

    Valid only for the source's current ``rollup_epoch`` and the monitor's current ``scope``
    (its filter and window width); anything else is ignored and cleared by the periodic
    evaluation.
    """

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=16)
    epoch = models.PositiveBigIntegerField()
    key = models.CharField(max_length=100, help_text='A metric, "pass_rate:<grader id>" or "releases".')
    window_start = models.DateTimeField()
    n = models.PositiveIntegerField(default=0)
    successes = models.PositiveIntegerField(default=0)
    errored = models.PositiveIntegerField(default=0)
    value = models.FloatField(null=True)
    low = models.FloatField(null=True)
    high = models.FloatField(null=True)
    variance = models.FloatField(default=0.0)
    releases = models.JSONField(default=dict, help_text="releases key: each release's first trace time.")
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["monitor", "scope", "epoch", "key", "window_start"], name="window_rollup_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} of monitor {self.monitor_id} at {self.window_start:%Y-%m-%d %H:%M}"
