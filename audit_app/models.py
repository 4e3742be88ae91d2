"""The append-only audit log: one row per governed act, each hash-chained to the one before."""

from django.conf import settings
from django.db import models

GENESIS = "0" * 64  # prev_hash of the first event


class AuditEvent(models.Model):
    """Who did what to which object, when, why, and through which path.

    Written only by ``audit_app.services.record_event``, in the same transaction as the act.
    ``actor_username`` is a snapshot: renaming a user does not change what the record says.
    ``hash`` covers every other field and ``prev_hash``, so an edited, removed or reordered
    event breaks the chain, which ``manage.py verify_audit`` recomputes.
    """

    created_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True, help_text="Empty: the system itself.")
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=300, blank=True)
    reason = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    via = models.CharField(max_length=300, blank=True, help_text="The path the act came through.")
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["object_type", "object_id"]),
            models.Index(fields=["action", "created_at"]),
            models.Index(fields=["actor", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} by {self.actor_username or 'system'}"
