"""Runs, step states and attempts of quantum_flow flows."""
import uuid

from django.db import models

MAX_EVENT_LENGTH = 100
MAX_EVENT_KEY_LENGTH = 200


class RunStatus(models.TextChoices):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(models.TextChoices):
    PENDING = "pending", "pending (waiting for dependencies)"
    QUEUED = "queued", "queued (task sent)"
    RUNNING = "running"
    # The handler returned ``Wait``: the step completes when its event is delivered.
    WAITING = "waiting", "waiting (for an event)"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AttemptStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out", "timed out"
    # The worker stopped (was killed, lost its connection) before it recorded an outcome.
    ABANDONED = "abandoned"
    # The attempt finished after the run was cancelled or failed, or after a newer attempt took over.
    DISCARDED = "discarded"


class FlowRun(models.Model):
    """One execution of a flow.

    Lifecycle: ``start_flow`` creates it ``running`` with a step state per step. It becomes
    ``completed`` when its last step completes, ``failed`` when a step runs out of attempts (the
    other unfinished steps are then cancelled), or ``cancelled`` by ``cancel_run``. A failed run can
    be retried from its failed step, which makes it ``running`` again.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    flow = models.CharField(max_length=60, db_index=True)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.RUNNING, db_index=True)
    input = models.JSONField(null=True)
    # Steps not yet completed; the last completion brings it to 0 and completes the run.
    remaining_steps = models.PositiveIntegerField()
    error = models.TextField(blank=True)
    failed_step = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Not a column: the outputs by step name that an eager ``start_flow`` returns with the run.
    step_outputs: dict | None = None

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["flow", "status"], name="quantum_flow_run_flow_status")]

    def __str__(self) -> str:
        return f"{self.flow} {self.id} ({self.status})"


class StepState(models.Model):
    """The state of one step in one run.

    Lifecycle: ``pending`` until its dependencies complete, then ``queued`` with a task on the flow's
    queue, ``running`` while a worker runs an attempt, and ``completed`` with its output. A failed
    attempt returns it to ``queued`` for the retry; the last failed attempt makes it ``failed``.
    A handler that returns ``Wait`` makes it ``waiting`` until its event is delivered (then
    ``completed`` with the event's payload as output) or its wait times out (then ``failed``).
    Steps left unfinished by a failed or cancelled run become ``cancelled``.
    """

    run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=20, choices=StepStatus.choices, default=StepStatus.PENDING)
    depends_on = models.JSONField(default=list)
    # Dependencies not yet completed; the completion that brings it to 0 sends this step's task.
    remaining_deps = models.PositiveIntegerField(default=0)
    # Attempts claimed so far, over every retry of the run; the attempt budget counts from attempts_base.
    attempts = models.PositiveIntegerField(default=0)
    attempts_base = models.PositiveIntegerField(default=0)
    task_msg_id = models.BigIntegerField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    # What a waiting step waits for; kept after the wait ends, as its record. The database default
    # covers the engine's own INSERT statements.
    wait_event = models.CharField(max_length=MAX_EVENT_LENGTH, blank=True, default="", db_default="")
    wait_key = models.CharField(max_length=MAX_EVENT_KEY_LENGTH, blank=True, default="", db_default="")
    wait_deadline = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="quantum_flow_step_unique_name")]
        indexes = [
            # Delivering an event looks up the steps waiting for it.
            models.Index(
                fields=["wait_event", "wait_key"],
                name="quantum_flow_step_waiting",
                condition=models.Q(status="waiting"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class StepAttempt(models.Model):
    """One attempt at a step: when it ran, on which worker, and how it ended."""

    step = models.ForeignKey(StepState, on_delete=models.CASCADE, related_name="attempt_rows")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=AttemptStatus.choices, default=AttemptStatus.RUNNING)
    msg_id = models.BigIntegerField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    retry_delay_s = models.FloatField(null=True, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["step", "number"]
        constraints = [models.UniqueConstraint(fields=["step", "number"], name="quantum_flow_attempt_unique_number")]

    def __str__(self) -> str:
        return f"attempt {self.number} ({self.status})"


class FlowEvent(models.Model):
    """An event delivered while no step waited for it, kept so that a step that waits later finds it.

    Only events delivered with ``deliver_event`` or ``send_event`` are kept. Events that triggers
    deliver (an LLM result, a HITL decision) have their own table as the record, and reach only the
    steps already waiting, which is why a step waits for the answer to a request it sent itself.
    """

    # TODO: prune kept events after a retention period; today only the admin deletes them.

    event = models.CharField(max_length=MAX_EVENT_LENGTH)
    key = models.CharField(max_length=MAX_EVENT_KEY_LENGTH)
    payload = models.JSONField(null=True, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["event", "key"], name="quantum_flow_event_unique_key")]

    def __str__(self) -> str:
        return f"{self.event} {self.key}"
