"""The judge cache and human labels (calibration of judges against people)."""

from django.conf import settings
from django.db import models


class JudgeCacheEntry(models.Model):
    """A judge's validated answer for (model, rubric version, rendered prompt): asked once."""

    key = models.CharField(max_length=64, unique=True, help_text="SHA-256 of model, version and prompt.")
    model = models.CharField(max_length=200)
    rubric_version = models.ForeignKey(
        "grading_app.RubricVersion", on_delete=models.CASCADE, related_name="+"
    )
    score = models.FloatField()
    passed = models.BooleanField()
    rationale = models.TextField(blank=True)
    raw_response = models.JSONField(default=dict, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key[:12]


class HumanLabel(models.Model):
    """A reviewer's own pass/fail (and optional score) on a graded result."""

    grade = models.ForeignKey("grading_app.Grade", on_delete=models.PROTECT, related_name="human_labels")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    passed = models.BooleanField()
    score = models.FloatField(null=True, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["grade", "reviewer"],
                name="human_label_once_per_reviewer",
                violation_error_message="You already labelled this result.",
            ),
            models.CheckConstraint(
                condition=models.Q(score__isnull=True) | models.Q(score__gte=0, score__lte=1),
                name="human_label_score_in_unit_interval",
                violation_error_message="A score lies between 0 and 1.",
            ),
        ]

    def __str__(self) -> str:
        return f"label {self.pk}"
