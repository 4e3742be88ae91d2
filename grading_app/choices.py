"""Enumerations shared by the grading models, jobs, admin and API."""

from django.db import models


class Dimension(models.TextChoices):
    CORRECTNESS = "correctness", "Correctness"
    SUPPORT = "support", "Support"
    CITATION = "citation", "Citation"
    ABSTENTION = "abstention", "Abstention"
    FORMAT = "format", "Format"
    SAFETY = "safety", "Safety"
    TRACE = "trace", "Trace"
    LATENCY = "latency", "Latency"
    COST = "cost", "Cost"


class RunStatus(models.TextChoices):
    WAITING = "waiting", "Waiting for its outputs"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"

    @classmethod
    def finished(cls) -> set[str]:
        return {cls.SUCCEEDED, cls.FAILED, cls.CANCELLED}


class ChunkStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class TargetKind(models.TextChoices):
    SUBMITTED = "submitted", "Submitted outputs"
    OPENAI_CHAT = "openai_chat", "OpenAI-compatible chat model"
    HTTP = "http", "HTTP endpoint of the system under test"


class RubricState(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted for sign-off"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    RETIRED = "retired", "Retired"


class RubricScale(models.TextChoices):
    BINARY = "binary", "Pass / fail"
    FIVE_POINT = "1-5", "1 to 5"
    UNIT = "0-1", "0 to 1"


class AlignmentStatus(models.TextChoices):
    MEASURING = "measuring", "Measuring on held-out labels"
    MEASURED = "measured", "Measured"
    FAILED = "failed", "Measurement failed"
