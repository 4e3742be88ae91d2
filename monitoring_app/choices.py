"""Enumerations of production monitoring (traces, feedback)."""

from django.db import models


class TraceOrigin(models.TextChoices):
    API = "api", "POST /api/v1/traces/"
    OTLP = "otlp", "OpenTelemetry (OTLP/HTTP)"


class Thumbs(models.TextChoices):
    UP = "up", "Thumbs up"
    DOWN = "down", "Thumbs down"
