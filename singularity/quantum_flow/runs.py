"""Start, cancel and retry runs; the public entry points of the engine besides the worker."""
import json
import logging
import uuid
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from .definitions import Flow, get_flow
from .errors import RunConflict, RunStateError
from .eager import execute_eagerly
from .executor import cancel_unfinished_steps, send_step_tasks
from .models import FlowRun, RunStatus, StepState, StepStatus

logger = logging.getLogger(__name__)


def start_flow(
    flow: type[Flow],
    input: Any = None,
    run_id: uuid.UUID | str | None = None,
    *,
    eager: bool = False,
    archive_message: tuple[str, int] | None = None,
) -> FlowRun:
    """Create a run of ``flow`` with ``input`` and send its root steps' tasks in the same transaction.

    With a ``run_id``, the start is idempotent: a second call with the same id returns the existing
    run and sends nothing (a caller with a natural key that is not a UUID can pass ``uuid5`` of it).
    An id that belongs to a run of another flow raises ``RunConflict``.

    With ``eager``, the steps run at once in this thread and in this transaction (see
    ``quantum_flow.eager``) instead of through the flow's queue. Only a step that has to wait for
    a retry gets a task. This saves a queue round trip per step for a caller that already runs in a
    worker, such as a consumer handling a request. The returned run then carries ``step_outputs``,
    the outputs of its completed steps by step name, so the caller needs no query to read them.

    ``archive_message``, a pgmq message as ``(queue, msg_id)``, is archived in the same transaction:
    a consumer that starts a run per message acknowledges the message with the start. An eager run
    archives it with its final statement, which saves the consumer a round trip. It is archived as
    well when the run exists already, but not when ``RunConflict`` is raised.
    """
    run_id = uuid.UUID(str(run_id)) if run_id is not None else uuid.uuid4()
    encoded_input = _encode_input(flow, input)
    # No savepoint inside a caller's transaction: the run belongs to it, and a savepoint would cost
    # two round trips on the consumer's hot path.
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            # ON CONFLICT makes concurrent starts with one id safe without a savepoint.
            cursor.execute(
                f"INSERT INTO {FlowRun._meta.db_table} "
                "(id, flow, status, input, remaining_steps, error, failed_step, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s::jsonb, %s, '', '', clock_timestamp(), clock_timestamp()) "
                "ON CONFLICT (id) DO NOTHING RETURNING created_at",
                [run_id, flow.slug, RunStatus.RUNNING, encoded_input, len(flow.steps)],
            )
            row = cursor.fetchone()
        if row is None:
            existing = FlowRun.objects.get(pk=run_id)
        else:
            existing = None
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("flow.run_started", extra={"flow": flow.slug, "run_id": str(run_id), "eager": eager})
            outputs = None
            if eager:
                # Handlers receive the input as JSON decodes it, as they would from a worker.
                status, outputs = execute_eagerly(flow, run_id, json.loads(encoded_input), archive_message)
            else:
                status = RunStatus.RUNNING
                StepState.objects.bulk_create(
                    StepState(
                        run_id=run_id,
                        name=step.name,
                        depends_on=list(step.depends_on),
                        remaining_deps=len(step.depends_on),
                        status=StepStatus.PENDING,
                    )
                    for step in flow.steps
                )
                send_step_tasks(flow, run_id, list(flow.root_steps))
                if archive_message is not None:
                    _archive(archive_message)

    if existing is not None:
        # Raised outside the atomic block, so a caller that catches it keeps a usable transaction.
        if existing.flow != flow.slug:
            raise RunConflict(
                f"run_id {run_id} already belongs to a run of flow {existing.flow!r}, not {flow.slug!r}; "
                "use a distinct run_id per flow."
            )
        logger.info("flow.run_exists", extra={"flow": flow.slug, "run_id": str(run_id), "status": existing.status})
        if archive_message is not None:
            _archive(archive_message)
        return existing
    run = FlowRun(pk=run_id, flow=flow.slug, status=status, input=input, created_at=row[0])
    run.step_outputs = outputs
    return run


def cancel_run(run_id: uuid.UUID | str, *, reason: str = "cancelled") -> FlowRun:
    """Cancel a running run: its unfinished steps are cancelled and their tasks archived.

    A step that is running when the run is cancelled finishes its attempt, but its completion is
    discarded and starts nothing. Raises ``RunStateError`` unless the run is running.
    """
    with transaction.atomic():
        run = FlowRun.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.RUNNING:
            raise RunStateError(f"Run {run.pk} is {run.status}; only a running run can be cancelled.")
        now = timezone.now()
        run.status = RunStatus.CANCELLED
        run.error = reason
        run.finished_at = now
        run.save(update_fields=["status", "error", "finished_at", "updated_at"])
        flow = get_flow(run.flow)
        cancel_unfinished_steps(flow, run, now)
        flow.on_run_stopped(run)
    logger.info("flow.run_cancelled", extra={"flow": run.flow, "run_id": str(run.pk), "reason": reason})
    return run


def retry_run(run_id: uuid.UUID | str) -> FlowRun:
    """Resume a failed run from its failed step; completed steps keep their outputs.

    The failed step gets a fresh attempt budget (its attempt numbers keep counting), steps cancelled
    by the failure wait for their dependencies again, and every step whose dependencies are all
    completed gets a new task. Raises ``RunStateError`` unless the run failed.
    """
    with transaction.atomic():
        run = FlowRun.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.FAILED:
            raise RunStateError(f"Run {run.pk} is {run.status}; only a failed run can be retried.")
        flow = get_flow(run.flow)
        steps = {step.name: step for step in StepState.objects.select_for_update().filter(run=run)}
        completed = {name for name, step in steps.items() if step.status == StepStatus.COMPLETED}
        ready = []
        for name, step in steps.items():
            if name in completed:
                continue
            step.remaining_deps = sum(1 for dependency in flow.step_map[name].depends_on if dependency not in completed)
            step.status = StepStatus.PENDING
            step.attempts_base = step.attempts
            step.error = ""
            step.finished_at = None
            step.task_msg_id = None
            step.save(update_fields=["remaining_deps", "status", "attempts_base", "error", "finished_at", "task_msg_id"])
            if step.remaining_deps == 0:
                ready.append(name)
        run.status = RunStatus.RUNNING
        run.remaining_steps = len(steps) - len(completed)
        run.error = ""
        run.failed_step = ""
        run.finished_at = None
        run.save(update_fields=["status", "remaining_steps", "error", "failed_step", "finished_at", "updated_at"])
        send_step_tasks(flow, run.pk, sorted(ready))
    logger.info("flow.run_retried", extra={"flow": run.flow, "run_id": str(run.pk), "steps": ",".join(sorted(ready))})
    return run


def _archive(message: tuple[str, int]) -> None:
    from singularity.models import Queue

    queue, msg_id = message
    Queue.objects.archive(queue, msg_id)


def _encode_input(flow: type[Flow], value: Any) -> str:
    try:
        return json.dumps(value, cls=DjangoJSONEncoder, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"The input of flow {flow.slug!r} cannot be stored as JSON: {exc}.") from exc
