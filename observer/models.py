"""Observer's models: the approvals agents ask for, and the append-only history of their changes.

Lifecycle of an ``Approval``: the ingest consumer creates it as ``pending`` from a message on
``observer_hitl_requests``. A person with the ``decide_approval`` permission approves, rejects or
answers it, or cancels it; the expiry schedule closes it as ``expired`` once ``expires_at`` has
passed. Each of these closes it for good: only a pending approval changes, each change writes one
``ApprovalHistory`` row, and the reply to the agent is sent in the same transaction.
"""
import json

from django.conf import settings
from django.db import models
from django.utils import timezone

from singularity.hitl.contracts import MAX_AGENT_ID_LENGTH, MAX_TASK_TYPE_LENGTH, RequestType

DECIDE_PERMISSION = "observer.decide_approval"


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    ANSWERED = "answered"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Approval(models.Model):
    """A request from an agent for approval of an action, or for the answer to a question."""

    Type = RequestType
    Status = ApprovalStatus

    request_id = models.UUIDField(unique=True, editable=False)
    type = models.CharField(max_length=20, choices=RequestType.choices)
    agent_id = models.CharField(max_length=MAX_AGENT_ID_LENGTH)
    task_type = models.CharField(max_length=MAX_TASK_TYPE_LENGTH)
    status = models.CharField(max_length=20, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    summary = models.TextField(blank=True)
    payload = models.JSONField(default=dict, help_text="What the agent asks about, as it sent it.")
    metadata = models.JSONField(default=dict, blank=True)
    reply_to = models.CharField(max_length=47, help_text="The queue that receives the decision.")
    expires_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    answer = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,  # A decision keeps its approver: the audit trail must not lose the name.
        null=True,
        blank=True,
        related_name="approval_decisions",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["status", "expires_at"]),
        ]
        permissions = [("decide_approval", "Can approve, reject, answer or cancel approvals")]

    def __str__(self) -> str:
        return f"{self.get_type_display()} {self.request_id} from {self.agent_id} ({self.status})"

    @property
    def is_pending(self) -> bool:
        return self.status == ApprovalStatus.PENDING

    @property
    def is_question(self) -> bool:
        return self.type == RequestType.QUESTION

    def is_past_expiry(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    def seconds_left(self, now=None) -> int | None:
        """Whole seconds until ``expires_at`` (0 once past), or None without an expiry."""
        if self.expires_at is None:
            return None
        return max(0, int((self.expires_at - (now or timezone.now())).total_seconds()))

    @property
    def question(self) -> str:
        value = self.payload.get("question") if isinstance(self.payload, dict) else None
        return value if isinstance(value, str) else ""

    @property
    def diff(self) -> str:
        """The unified diff the agent sent under ``payload["diff"]``, or an empty string."""
        value = self.payload.get("diff") if isinstance(self.payload, dict) else None
        return value if isinstance(value, str) else ""

    @property
    def payload_json(self) -> str:
        return json.dumps(self.payload, indent=2, sort_keys=True, ensure_ascii=False)

    @property
    def metadata_json(self) -> str:
        return json.dumps(self.metadata, indent=2, sort_keys=True, ensure_ascii=False)


class AppendOnlyError(RuntimeError):
    """An ``ApprovalHistory`` row was about to be changed or deleted; history rows are only added."""


class ApprovalHistory(models.Model):
    """One state change of an approval: who made it, when, from which status to which, and why.

    Rows are only ever inserted. ``save`` on an existing row and ``delete`` raise, and a database
    trigger rejects UPDATE and DELETE from any other client.
    """

    approval = models.ForeignKey(Approval, on_delete=models.PROTECT, related_name="history")
    from_status = models.CharField(max_length=20, choices=ApprovalStatus.choices, blank=True)
    to_status = models.CharField(max_length=20, choices=ApprovalStatus.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="approval_history",
        help_text="The signed-in user; empty for changes the system made (ingest, expiry).",
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "approval history"

    def __str__(self) -> str:
        return f"{self.approval.request_id}: {self.from_status or 'new'} -> {self.to_status}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"Approval history row {self.pk} cannot be changed: add a new row instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"Approval history row {self.pk} cannot be deleted: the history is append-only.")

    @property
    def actor_name(self) -> str:
        return self.actor.get_username() if self.actor else "system"
