"""Enumerations shared by the datasets models, admin, services and API."""

from django.db import models


class Tier(models.TextChoices):
    TRUSTED = "trusted", "Trusted (release decisions)"
    MONITORING = "monitoring", "Monitoring (drift)"


class CaseStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class Risk(models.TextChoices):
    LOW = "low", "Low"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High"


class CaseSource(models.TextChoices):
    AUTHORED = "authored", "Authored"
    IMPORTED = "imported", "Imported"
    INCIDENT = "incident", "Incident"
    PRODUCTION = "production", "Production"


class IncidentStatus(models.TextChoices):
    NEW = "new", "New"
    TRIAGED = "triaged", "Triaged"
    CONVERTED = "converted", "Converted to a regression case"
    DISMISSED = "dismissed", "Dismissed"


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class PinnedChange(models.TextChoices):
    RETIRE = "retire", "Retire the pinned case"
    UNPIN = "unpin", "Unpin the case"


class RequestStatus(models.TextChoices):
    OPEN = "open", "Open"
    CONFIRMED = "confirmed", "Confirmed"
    DECLINED = "declined", "Declined"
    WITHDRAWN = "withdrawn", "Withdrawn"
