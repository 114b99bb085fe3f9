"""The agents' record of their human-in-the-loop requests and of the decisions observer sent back."""
import uuid

from django.db import models

from .contracts import MAX_AGENT_ID_LENGTH, MAX_TASK_TYPE_LENGTH, DecisionStatus, RequestType


class HitlRequest(models.Model):
    """A request an agent sent to ``observer_hitl_requests``: pending until its decision is stored.

    It is written in the transaction that sends the message, so a decision can always be matched
    to it and a waiter can tell an unknown request_id from one still waiting.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        DECIDED = "decided"

    request_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=20, choices=RequestType.choices)
    agent_id = models.CharField(max_length=MAX_AGENT_ID_LENGTH)
    task_type = models.CharField(max_length=MAX_TASK_TYPE_LENGTH)
    reply_to = models.CharField(max_length=47)
    expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "HITL request"

    def __str__(self) -> str:
        return f"{self.request_id} ({self.type} by {self.agent_id}, {self.status})"


class HitlDecision(models.Model):
    """The one decision observer sent for a ``HitlRequest``, as received on the decisions queue."""

    request = models.OneToOneField(
        HitlRequest, on_delete=models.CASCADE, to_field="request_id", related_name="decision"
    )
    decision = models.CharField(max_length=20, choices=DecisionStatus.choices)
    decided_by = models.CharField(
        max_length=150, blank=True, help_text="Username of the approver; empty when the request expired."
    )
    reason = models.TextField(blank=True)
    answer = models.TextField(blank=True)
    decided_at = models.DateTimeField()
    raw = models.JSONField(help_text="The decision message body as received.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "HITL decision"

    def __str__(self) -> str:
        return f"{self.request_id}: {self.decision}"
