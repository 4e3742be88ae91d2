"""Production traffic: the sources that send it and the trace records they sent."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from simple_history.models import HistoricalRecords

from monitoring_app.choices import Thumbs, TraceOrigin


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
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

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
        # Every monitor and drift query is "this source (and release), this time window".
        indexes = [
            models.Index(fields=["source", "time"], name="trace_source_time"),
            models.Index(fields=["source", "release", "time"], name="trace_source_release_time"),
            models.Index(fields=["time"], name="trace_time"),
        ]

    def __str__(self) -> str:
        return f"{self.source_id}:{self.client_id}"


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
