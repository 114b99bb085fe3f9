"""Eager execution: run a new run's steps in the transaction that starts it, instead of through the queue.

``start_flow(..., eager=True)`` calls ``execute_eagerly`` right after inserting the run row. No other
transaction can see the run until the caller commits, so no other worker can touch it, and the
steps need neither tasks nor the conditional updates of the step worker. Their state is kept in
memory and written once at the end: the step rows, their attempts, the run's status, and one
delayed task per step that has to wait for a retry. Each handler runs in a savepoint, so a failed
attempt rolls back only its own writes. A crash rolls back the whole transaction, run row included,
and the caller's retry starts the run afresh.
"""
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from singularity.messaging.runtime import RetryLater

from .definitions import Flow, StepContext
from .errors import StepFailed, StepTimedOut
from .events import Wait
from .executor import Task, backoff_seconds, max_attempts_of, worker_name
from .models import AttemptStatus, FlowRun, RunStatus, StepAttempt, StepState, StepStatus

logger = logging.getLogger(__name__)

_STEP_TABLE = StepState._meta.db_table
_ATTEMPT_TABLE = StepAttempt._meta.db_table
_RUN_TABLE = FlowRun._meta.db_table
_STORE_SQL = f"""
WITH new_steps AS (
    INSERT INTO {_STEP_TABLE} (run_id, name, status, depends_on, remaining_deps, attempts, attempts_base,
                               task_msg_id, output, error, queued_at, started_at, finished_at)
    SELECT %s, s.name, s.status, s.depends_on, s.remaining_deps, s.attempts, 0,
           s.task_msg_id, s.output, s.error, s.queued_at, s.started_at, s.finished_at
    FROM jsonb_to_recordset(%s::jsonb) AS s(
        name text, status text, depends_on jsonb, remaining_deps integer, attempts integer,
        task_msg_id bigint, output jsonb, error text, queued_at timestamptz, started_at timestamptz,
        finished_at timestamptz)
    RETURNING id, name
), new_attempts AS (
    INSERT INTO {_ATTEMPT_TABLE} (step_id, number, status, msg_id, worker, error, retry_delay_s,
                                  started_at, finished_at, duration_ms)
    SELECT new_steps.id, a.number, a.status, NULL, a.worker, a.error, a.retry_delay_s,
           a.started_at, a.finished_at, a.duration_ms
    FROM jsonb_to_recordset(%s::jsonb) AS a(
        step text, number integer, status text, worker text, error text, retry_delay_s double precision,
        started_at timestamptz, finished_at timestamptz, duration_ms double precision)
    JOIN new_steps ON new_steps.name = a.step
)
UPDATE {_RUN_TABLE} SET status = %s, remaining_steps = %s, error = %s, failed_step = %s, finished_at = %s,
    updated_at = clock_timestamp()
WHERE id = %s
"""


@dataclass
class _AttemptRecord:
    number: int
    worker: str
    started_at: object
    status: str = AttemptStatus.RUNNING
    error: str = ""
    retry_delay_s: float | None = None
    finished_at: object = None
    duration_ms: float | None = None


@dataclass
class _StepRecord:
    name: str
    depends_on: tuple[str, ...]
    remaining_deps: int
    status: str = StepStatus.PENDING
    output: object = None
    error: str = ""
    retry_delay: float | None = None
    task_msg_id: int | None = None
    queued_at: object = None
    started_at: object = None
    finished_at: object = None
    attempts: list[_AttemptRecord] = field(default_factory=list)


def execute_eagerly(flow: type[Flow], run_id, input) -> tuple[str, dict]:
    """Run the steps of the new run ``run_id`` until none is ready and store the outcome.

    Returns the run's status and the outputs of its completed steps by step name.
    """
    records = {
        step.name: _StepRecord(step.name, step.depends_on, len(step.depends_on)) for step in flow.steps
    }
    ready = deque(flow.root_steps)
    for name in ready:
        records[name].status = StepStatus.QUEUED
        records[name].queued_at = timezone.now()
    run_error, failed_step = "", ""
    worker = worker_name()

    while ready:
        record = records[ready.popleft()]
        definition = flow.step_map[record.name]
        max_attempts = max_attempts_of(flow, record.name)
        context = StepContext(
            run_id=str(run_id),
            flow=flow.slug,
            step=record.name,
            input=input,
            outputs={name: records[name].output for name in definition.depends_on},
            attempt=1,
            max_attempts=max_attempts,
        )
        started = time.monotonic()
        if definition.timeout is not None:
            context.deadline = started + definition.timeout
        record.started_at = timezone.now()
        attempt = _AttemptRecord(number=1, worker=worker, started_at=record.started_at)
        record.attempts.append(attempt)
        savepoint = _LazySavepoint()
        try:
            with connection.execute_wrapper(savepoint):
                output = definition.handler(context)
            elapsed = time.monotonic() - started
            if definition.timeout is not None and elapsed > definition.timeout:
                raise StepTimedOut(
                    f"attempt took {elapsed:.3f} s, more than the step's timeout of {definition.timeout:g} s"
                )
            if isinstance(output, Wait):
                raise StepFailed("the handler returned Wait, but an eager run cannot wait: start the flow without eager=True")
            try:
                # Dependents receive the output as JSON decodes it, as they would from a worker.
                output = json.loads(json.dumps(output, cls=DjangoJSONEncoder, allow_nan=False))
            except (TypeError, ValueError) as exc:
                raise StepFailed(f"the handler returned an output that is not JSON: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - recorded on the attempt, then retried through the queue or final
            savepoint.rollback()
            if isinstance(exc, (StepFailed, StepTimedOut, RetryLater)):
                error = str(exc)
            else:
                error = f"{type(exc).__name__}: {exc}"
            status = AttemptStatus.TIMED_OUT if isinstance(exc, StepTimedOut) else AttemptStatus.FAILED
            _finish_attempt(attempt, status, started, error)
            record.error = error
            ids = {"flow": flow.slug, "run_id": str(run_id), "step": record.name, "attempt": 1}
            ids["max_attempts"] = max_attempts
            if isinstance(exc, StepFailed) or max_attempts <= 1:
                record.status = StepStatus.FAILED
                record.finished_at = timezone.now()
                failed_step = record.name
                run_error = f"step {record.name!r} failed: {error} (attempt 1 of {max_attempts})"
                logger.error("flow.run_failed", extra={**ids, "error": error})
                break
            if isinstance(exc, RetryLater) and exc.delay is not None:
                delay = exc.delay
            else:
                delay = backoff_seconds(flow, record.name, 1)
            attempt.retry_delay_s = delay
            record.retry_delay = delay
            record.status = StepStatus.QUEUED
            logger.warning("flow.step_retrying", extra={**ids, "delay_s": delay, "error": error})
            continue

        _finish_attempt(attempt, AttemptStatus.SUCCEEDED, started)
        record.status = StepStatus.COMPLETED
        record.output = output
        record.finished_at = timezone.now()
        for dependent in flow.dependents[record.name]:
            records[dependent].remaining_deps -= 1
            if records[dependent].remaining_deps == 0:
                records[dependent].status = StepStatus.QUEUED
                records[dependent].queued_at = timezone.now()
                ready.append(dependent)

    status = _store(flow, run_id, records, run_error, failed_step)
    outputs = {name: record.output for name, record in records.items() if record.status == StepStatus.COMPLETED}
    return status, outputs


class _LazySavepoint:
    """A database execute wrapper that sets a savepoint just before the handler's first statement.

    A handler that never touches the database (a validation, a provider call) then costs no
    savepoint round trips, and one that does can still be rolled back alone. The savepoint is not
    released on success: releasing would cost a round trip, and PostgreSQL drops it at commit.
    """

    def __init__(self):
        self.savepoint_id: str | None = None
        self._creating = False

    def __call__(self, execute, sql, params, many, context):
        if self.savepoint_id is None and not self._creating:
            self._creating = True
            try:
                self.savepoint_id = transaction.savepoint()
            finally:
                self._creating = False
        return execute(sql, params, many, context)

    def rollback(self) -> None:
        """Undo the handler's statements, if it ran any."""
        if self.savepoint_id is not None:
            transaction.savepoint_rollback(self.savepoint_id)


def _finish_attempt(attempt: _AttemptRecord, status: str, started: float, error: str = "") -> None:
    attempt.status = status
    attempt.error = error
    attempt.finished_at = timezone.now()
    attempt.duration_ms = round((time.monotonic() - started) * 1000, 3)


def _store(flow: type[Flow], run_id, records: dict[str, _StepRecord], run_error: str, failed_step: str) -> str:
    """Write the step rows, their attempts, the retry tasks and the run's status."""
    # TODO: fold the run row's insert into this statement until one nexus worker drains 200
    # requests/s again; it drains about 130/s since the flow (docs/benchmarks.md).
    from singularity.models import Queue

    now = timezone.now()
    if failed_step:
        for record in records.values():
            if record.status in (StepStatus.PENDING, StepStatus.QUEUED):
                record.status = StepStatus.CANCELLED
                record.finished_at = now
    else:
        for record in records.values():
            if record.retry_delay is not None and record.status == StepStatus.QUEUED:
                record.task_msg_id = Queue.objects.send(
                    flow.queue_name(), Task.body(flow, run_id, record.name), delay=record.retry_delay
                )

    remaining = sum(1 for record in records.values() if record.status != StepStatus.COMPLETED)
    if failed_step:
        status = RunStatus.FAILED
    elif remaining == 0:
        status = RunStatus.COMPLETED
    else:
        status = RunStatus.RUNNING
    steps = [
        {
            "name": record.name,
            "status": record.status,
            "depends_on": list(record.depends_on),
            "remaining_deps": record.remaining_deps,
            "attempts": len(record.attempts),
            "task_msg_id": record.task_msg_id,
            "output": record.output,
            "error": record.error if record.status != StepStatus.COMPLETED else "",
            "queued_at": record.queued_at,
            "started_at": record.started_at,
            "finished_at": record.finished_at,
        }
        for record in records.values()
    ]
    attempts = [
        {
            "step": record.name,
            "number": attempt.number,
            "status": attempt.status,
            "worker": attempt.worker,
            "error": attempt.error,
            "retry_delay_s": attempt.retry_delay_s,
            "started_at": attempt.started_at,
            "finished_at": attempt.finished_at,
            "duration_ms": attempt.duration_ms,
        }
        for record in records.values()
        for attempt in record.attempts
    ]
    encode = partial(json.dumps, cls=DjangoJSONEncoder)
    with connection.cursor() as cursor:
        # One statement writes the steps, their attempts and the run's outcome: on a loaded machine
        # each round trip costs more than the SQL it carries.
        cursor.execute(
            _STORE_SQL,
            [
                run_id, encode(steps), encode(attempts),
                status, remaining, run_error, failed_step, now if status != RunStatus.RUNNING else None, run_id,
            ],
        )
    if status == RunStatus.COMPLETED:
        logger.info("flow.run_completed", extra={"flow": flow.slug, "run_id": str(run_id)})
    return status
