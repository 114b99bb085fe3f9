"""Genesis's tables: applied rules, monitor samples, and alert incidents."""
from django.db import models
from django.db.models import Q

from singularity.rules.contracts import MAX_NAMESPACE_LENGTH, MAX_RULE_ID_LENGTH, MAX_SOURCE_LENGTH, RuleType


class RuleStatus(models.TextChoices):
    """States of a rule version genesis has accepted.

    Proposed, published and rejected versions never reach this table: the publisher records them
    on its own outbox rows, and genesis sends rejections on ``genesis_rule_updates_results``.
    """

    APPLIED = "applied"
    SUPERSEDED = "superseded"
    RETIRED = "retired"


class Rule(models.Model):
    """One accepted version of a rule.

    Lifecycle: the consumer stores a version as ``applied`` when it is newer than every stored
    version of the rule, and marks the previously applied one ``superseded`` in the same
    transaction. An operator may retire an applied version from the admin; a retired rule stays
    out of ``get_rules`` until a newer version arrives. At most one version per rule is applied.
    """

    rule_id = models.CharField(max_length=MAX_RULE_ID_LENGTH)
    version = models.PositiveIntegerField()
    namespace = models.CharField(max_length=MAX_NAMESPACE_LENGTH)
    rule_type = models.CharField(max_length=20, choices=RuleType.choices)
    pattern = models.JSONField()
    action = models.JSONField()
    confidence = models.FloatField()
    source_instance = models.CharField(max_length=MAX_SOURCE_LENGTH)
    status = models.CharField(max_length=20, choices=RuleStatus.choices, default=RuleStatus.APPLIED)
    msg_id = models.BigIntegerField(help_text="pgmq id of the genesis_rule_updates message that delivered it.")
    published_at = models.DateTimeField(help_text="When the publisher published this version.")
    applied_at = models.DateTimeField()
    superseded_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    retired_by = models.CharField(max_length=150, blank=True, help_text="Username of the operator who retired it.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rule_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["rule_id", "version"], name="genesis_rule_unique_version"),
            models.UniqueConstraint(
                fields=["rule_id"], condition=Q(status="applied"), name="genesis_rule_one_applied_version"
            ),
            models.CheckConstraint(condition=Q(confidence__gte=0, confidence__lte=1), name="genesis_rule_confidence_range"),
        ]
        indexes = [
            models.Index(fields=["status", "namespace"]),
            models.Index(fields=["applied_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id} v{self.version} ({self.status})"

    @property
    def publish_to_apply_seconds(self) -> float:
        return (self.applied_at - self.published_at).total_seconds()


class MonitorSample(models.Model):
    """One monitor run: the rule pipeline's figures, with a ``QueueSample`` per queue.

    Samples older than ``GENESIS_SAMPLE_RETENTION_DAYS`` are deleted by the monitor itself.
    """

    sampled_at = models.DateTimeField(db_index=True)
    backlog_age_seconds = models.FloatField(
        null=True, blank=True, help_text="Age of the oldest message waiting in genesis_rule_updates."
    )
    apply_lag_seconds = models.FloatField(
        null=True, blank=True, help_text="Longest publish-to-apply time of the rules applied since the previous run."
    )
    applied_since_previous = models.PositiveIntegerField(default=0)
    unacknowledged = models.PositiveIntegerField(help_text="Published rule versions without a result.")
    unacknowledged_overdue = models.PositiveIntegerField(
        help_text="Of those, the ones older than GENESIS_ALERT_UNACKNOWLEDGED_SECONDS."
    )
    rejected_total = models.PositiveIntegerField()
    apply_failures = models.PositiveIntegerField(
        help_text="genesis_rule_updates messages dead-lettered, or waiting for a retry after a failed attempt."
    )

    class Meta:
        ordering = ["-sampled_at"]

    def __str__(self) -> str:
        return f"monitor sample {self.sampled_at:%Y-%m-%d %H:%M:%S}"


class QueueSample(models.Model):
    """pgmq's figures for one queue at one monitor run; ages are in seconds, ``None`` for an empty queue."""

    sample = models.ForeignKey(MonitorSample, on_delete=models.CASCADE, related_name="queues")
    queue_name = models.CharField(max_length=47)
    depth = models.PositiveIntegerField()
    visible_depth = models.PositiveIntegerField()
    oldest_age_seconds = models.FloatField(null=True, blank=True)
    newest_age_seconds = models.FloatField(null=True, blank=True)
    total_sent = models.BigIntegerField()
    dead_letters = models.PositiveIntegerField(help_text="Messages in dead_letters that came from this queue.")

    class Meta:
        ordering = ["queue_name"]
        constraints = [models.UniqueConstraint(fields=["sample", "queue_name"], name="genesis_queuesample_unique")]

    def __str__(self) -> str:
        return f"{self.queue_name}: {self.depth}"


class AlertName(models.TextChoices):
    QUEUE_BACKLOG = "queue_backlog", "Oldest message too old"
    UNACKNOWLEDGED_RULES = "unacknowledged_rules", "Rules published but not acknowledged"
    DEAD_LETTERS = "dead_letters", "Dead-lettered messages"


class Severity(models.TextChoices):
    WARNING = "warning"
    ERROR = "error"


class IncidentStatus(models.TextChoices):
    OPEN = "open"
    RESOLVED = "resolved"


class WebhookStatus(models.TextChoices):
    DISABLED = "disabled", "No webhook configured"
    SENT = "sent"
    FAILED = "failed"


class AlertIncident(models.Model):
    """One firing of an alert rule, from the run that found its condition to the run that cleared it.

    Lifecycle: opened once when a condition starts to hold (a partial unique constraint allows one
    open incident per alert and subject), updated with the latest value while it holds, resolved
    after ``GENESIS_ALERT_CLEAR_RUNS`` monitor runs in a row find it clear. A condition that
    returns before that keeps the same incident, so a value hovering at the threshold notifies once.
    """

    alert = models.CharField(max_length=40, choices=AlertName.choices)
    subject = models.CharField(max_length=100, blank=True, help_text="The queue the alert is about, if any.")
    severity = models.CharField(max_length=10, choices=Severity.choices)
    status = models.CharField(max_length=10, choices=IncidentStatus.choices, default=IncidentStatus.OPEN)
    message = models.TextField()
    threshold = models.FloatField()
    trigger_value = models.FloatField(help_text="The value that opened the incident.")
    trigger_values = models.JSONField(default=dict, help_text="The monitor's figures when the incident opened.")
    last_value = models.FloatField()
    peak_value = models.FloatField()
    clear_runs = models.PositiveIntegerField(default=0, help_text="Runs in a row that found the condition clear.")
    opened_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    opened_webhook = models.CharField(max_length=10, choices=WebhookStatus.choices, blank=True)
    resolved_webhook = models.CharField(max_length=10, choices=WebhookStatus.choices, blank=True)
    webhook_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "subject"], condition=Q(status="open"), name="genesis_alert_one_open_incident"
            ),
        ]

    def __str__(self) -> str:
        subject = f" ({self.subject})" if self.subject else ""
        return f"{self.get_alert_display()}{subject}: {self.status}"
