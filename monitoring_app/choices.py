"""Enumerations of production monitoring (traces, feedback)."""

from django.db import models


class TraceOrigin(models.TextChoices):
    API = "api", "POST /api/v1/traces/"
    OTLP = "otlp", "OpenTelemetry (OTLP/HTTP)"


class Thumbs(models.TextChoices):
    UP = "up", "Thumbs up"
    DOWN = "down", "Thumbs down"


class Reference(models.TextChoices):
    PREVIOUS = "previous", "The previous window"
    PINNED = "pinned", "A pinned window"


class SampleStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be graded"
    GRADED = "graded", "Graded"
    FAILED = "failed", "Grading failed"


class ReviewStatus(models.TextChoices):
    NONE = "", "Nothing to review"
    WAITING = "waiting", "Waiting for review"
    INCIDENT = "incident", "Reported as an incident"
    CASE = "case", "Added as a draft case"
    DISMISSED = "dismissed", "Dismissed"
