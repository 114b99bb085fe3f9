"""The publisher's outbox of rules: one row per rule version sent to genesis."""
from django.db import models

from .contracts import MAX_NAMESPACE_LENGTH, MAX_RULE_ID_LENGTH, MAX_SOURCE_LENGTH, RuleType


class PublishStatus(models.TextChoices):
    PUBLISHED = "published"
    APPLIED = "applied"
    REJECTED = "rejected"


class PublishedRule(models.Model):
    """A rule version as the agents' side published it, and the result genesis returned.

    Lifecycle: ``publish_rule`` stores the row as ``published`` and sends its message in the same
    transaction. The results consumer moves it once to ``applied`` or ``rejected`` and stamps
    ``acknowledged_at``. A row still ``published`` after a while lost its message or its result,
    and ``genesis_backfill`` sends it again.
    """

    rule_id = models.CharField(max_length=MAX_RULE_ID_LENGTH)
    version = models.PositiveIntegerField()
    namespace = models.CharField(max_length=MAX_NAMESPACE_LENGTH)
    rule_type = models.CharField(max_length=20, choices=RuleType.choices)
    pattern = models.JSONField()
    action = models.JSONField()
    confidence = models.FloatField()
    source_instance = models.CharField(max_length=MAX_SOURCE_LENGTH)
    status = models.CharField(max_length=20, choices=PublishStatus.choices, default=PublishStatus.PUBLISHED)
    last_error = models.TextField(blank=True, help_text="Why genesis rejected this version, if it did.")
    msg_id = models.BigIntegerField(null=True, blank=True, help_text="pgmq id of the latest message sent for this version.")
    publish_count = models.PositiveIntegerField(default=1, help_text="Messages sent for this version; above 1 after a backfill.")
    published_at = models.DateTimeField()
    last_sent_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-published_at"]
        constraints = [
            models.UniqueConstraint(fields=["rule_id", "version"], name="singularity_rules_unique_rule_version"),
            models.CheckConstraint(
                condition=models.Q(confidence__gte=0, confidence__lte=1), name="singularity_rules_confidence_range"
            ),
        ]
        indexes = [models.Index(fields=["status", "published_at"])]

    def __str__(self) -> str:
        return f"{self.rule_id} v{self.version} ({self.status})"
