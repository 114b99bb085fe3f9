"""Models of the agents' side: pgmq's queues and install record, LLM requests and their results."""
import uuid

from django.db import models

from singularity.llm.contracts import Complexity, ResultStatus, TaskType
from singularity.messaging.pgmq import PgmqManager


class Queue(models.Model):
    """A pgmq queue, read from ``pgmq.meta``; ``Queue.objects`` is the pgmq manager."""

    queue_name = models.CharField(max_length=47, primary_key=True)
    is_partitioned = models.BooleanField()
    is_unlogged = models.BooleanField()
    created_at = models.DateTimeField()

    objects = PgmqManager()

    class Meta:
        managed = False
        db_table = 'pgmq"."meta'  # Django quotes this as "pgmq"."meta": the table in pgmq's schema.
        ordering = ["queue_name"]

    def __str__(self) -> str:
        return self.queue_name


class PgmqInstallation(models.Model):
    """A record of how pgmq was installed into this database, written by the install migration."""

    class Method(models.TextChoices):
        EXTENSION = "extension", "CREATE EXTENSION pgmq"
        BUNDLED_SQL = "bundled_sql", "SQL bundled with the pgmq Python package"

    method = models.CharField(max_length=20, choices=Method.choices)
    version = models.CharField(max_length=40)
    installed_now = models.BooleanField(help_text="False when pgmq was already in the database.")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-recorded_at"]

    def __str__(self) -> str:
        return f"pgmq {self.version} ({self.get_method_display()})"


class LlmRequest(models.Model):
    """An LLM request an agent dispatched: pending until its result arrives on ``ai_results``."""

    class Status(models.TextChoices):
        PENDING = "pending"
        COMPLETED = "completed"
        FAILED = "failed"

    request_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    agent_id = models.CharField(max_length=200)
    task_type = models.CharField(max_length=40, choices=TaskType.choices)
    complexity = models.CharField(max_length=20, choices=Complexity.choices)
    messages = models.JSONField(help_text="The request's messages, or its input text.")
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.request_id} ({self.task_type}/{self.complexity}, {self.status})"


class JobResult(models.Model):
    """The one result of an ``LlmRequest``: the answer with usage, cost and latency, or the failure."""

    request = models.OneToOneField(
        LlmRequest, on_delete=models.CASCADE, to_field="request_id", related_name="result"
    )
    status = models.CharField(max_length=10, choices=ResultStatus.choices)
    response = models.TextField(blank=True)
    model = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=50, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True, help_text="Time nexus spent on the provider call.")
    error_type = models.CharField(max_length=50, blank=True)
    error_message = models.TextField(blank=True)
    raw = models.JSONField(help_text="The ai_results message body as received.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.request_id}: {self.status}"

    @property
    def ok(self) -> bool:
        return self.status == ResultStatus.OK
