"""The record of agent runs: one row per run, advanced by the steps of its ``agent_run`` flow run."""
import uuid

from django.db import models


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    WAITING_LLM = "waiting_llm", "waiting for the LLM"
    WAITING_DECISION = "waiting_decision", "waiting for a person"
    SUCCEEDED = "succeeded"
    NOTHING_TO_DO = "nothing_to_do", "nothing to propose"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    CONFLICT = "conflict"


TERMINAL_STATUSES = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.NOTHING_TO_DO,
        RunStatus.FAILED,
        RunStatus.REJECTED,
        RunStatus.EXPIRED,
        RunStatus.CANCELLED,
        RunStatus.CONFLICT,
    }
)


class Step(models.TextChoices):
    START = "start"
    ASK = "ask", "ask a question"
    THINK = "think"
    PROPOSE = "propose"
    ACT = "act"
    DONE = "done"


class AgentRun(models.Model):
    """One run of an agent.

    Lifecycle: ``queued`` → (``waiting_decision`` on a question →) ``waiting_llm`` →
    ``waiting_decision`` on the proposal → ``succeeded`` or ``conflict`` when approved, else
    ``rejected``, ``expired`` or ``cancelled``. Invalid model output or an error ends it as
    ``failed``. The run's ``agent_run`` flow run has the same id; while the run waits, one of its
    steps is ``waiting`` for the event of the LLM result or the decision.
    """

    run_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    agent = models.CharField(max_length=100, db_index=True)
    input = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    step = models.CharField(max_length=20, choices=Step.choices, default=Step.START)
    llm_request_ids = models.JSONField(default=list, blank=True)
    approval_request_ids = models.JSONField(
        default=list, blank=True, help_text="request_ids of every HITL request (approvals and questions) of this run."
    )
    proposal_request_id = models.UUIDField(
        null=True, blank=True, help_text="request_id of the approval whose payload the act step may apply."
    )
    proposal = models.JSONField(default=dict, blank=True, help_text="The payload shown to the approver.")
    state = models.JSONField(default=dict, blank=True, help_text="The agent's working data between steps.")
    outcome = models.TextField(blank=True)
    model_output = models.TextField(blank=True, help_text="The model's text when it failed validation.")
    changes = models.JSONField(default=dict, blank=True, help_text="What the act step changed.")
    decided_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.agent} {self.run_id} ({self.get_status_display()})"

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL_STATUSES
