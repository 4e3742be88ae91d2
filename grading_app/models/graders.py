"""Graders: a registry kind plus its config, applied to some failure classes."""

from django.core.exceptions import ValidationError
from django.db import models
from simple_history.models import HistoricalRecords

from grading_app import graders
from grading_app.choices import Dimension


class Grader(models.Model):
    """A configured grader: a registry kind plus config, applied to some failure classes."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    # A key into the grader registry, not model choices: new kinds need no migration.
    kind = models.CharField(max_length=64)
    dimension = models.CharField(max_length=16, choices=Dimension.choices, blank=True)
    config = models.JSONField(default=dict, blank=True)
    failure_classes = models.ManyToManyField(
        "datasets_app.FailureClass",
        blank=True,
        related_name="graders",
        help_text="Failure classes this grader checks; none means every case.",
    )
    rubric = models.ForeignKey(
        "grading_app.Rubric",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="graders",
        help_text="For judge kinds: runs use its latest approved version, else its latest version.",
    )
    rubric_version = models.ForeignKey(
        "grading_app.RubricVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Optional: pin one version of the rubric instead.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(m2m_fields=[failure_classes])

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        kind = graders.get_kind(self.kind)
        self.config = kind.validate_config(self.config)
        if kind.needs_rubric and self.rubric_id is None:
            raise ValidationError({"rubric": f"A {self.kind} grader needs a rubric."})
        if self.rubric_version_id and self.rubric_version.rubric_id != self.rubric_id:
            raise ValidationError(
                {"rubric_version": "The pinned version must belong to the grader's rubric."}
            )
        if not self.dimension:
            self.dimension = kind.dimension
