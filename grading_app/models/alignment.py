"""Judge alignment: a draft rubric version built from the cases where people and the judge
disagreed, and its agreement with people measured on labels it was not built from."""

from django.conf import settings
from django.db import models

from grading_app.choices import AlignmentStatus


class AlignmentProposal(models.Model):
    """Which labels a proposed version learned from, which it is measured on, and the result.

    The two sets of labelled grades are fixed when the proposal is made and never overlap, so
    the measurement is never taken on an example the draft was shown. ``human`` keeps the
    people's verdict per grade as it stood then: labels added later do not move the goalposts.
    """

    source = models.ForeignKey(
        "grading_app.RubricVersion", on_delete=models.PROTECT, related_name="alignment_proposals"
    )
    proposed = models.OneToOneField(
        "grading_app.RubricVersion", on_delete=models.PROTECT, related_name="alignment"
    )
    built_from = models.JSONField(default=list, help_text="Grade ids whose labels built the draft.")
    held_out = models.JSONField(default=list, help_text="Grade ids whose labels measure it.")
    human = models.JSONField(default=dict, help_text="People's verdict per grade id, when proposed.")
    status = models.CharField(
        max_length=16, choices=AlignmentStatus.choices, default=AlignmentStatus.MEASURING
    )
    measurement = models.JSONField(default=dict, blank=True)
    measured_content = models.CharField(
        max_length=64, blank=True, help_text="Digest of the version's content that was measured."
    )
    measured_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"alignment of {self.source} -> v{self.proposed.number}" if self.proposed_id else "alignment"
