"""Eager execution: run a new run's steps in the transaction that starts it, instead of through the queue.

``start_flow(..., eager=True)`` calls ``execute_eagerly`` right after inserting the run row. No other
transaction can see the run until the caller commits, so no other worker can touch it, and the
steps need neither tasks nor the conditional updates of the step worker. Their state is kept in
memory and written once at the end: the step rows, their attempts, the run's status, and one
delayed task per step that has to wait for a retry. A handler's first statement sets a savepoint,
so a failed attempt rolls back only its own writes. A crash rolls back the whole transaction, run
row included, and the caller's retry starts the run afresh.

On a loaded machine a round trip to PostgreSQL costs more than the SQL it carries. A handler can
therefore pass a write to ``execute_with_completion`` and a message to ``send_with_completion``: an
eager run adds both to its final statement, and the handler then needs no savepoint either.
"""
import json
import logging
import time
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Sequence

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from singularity.messaging.queues import validate_queue_name
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
# The WITH queries of the final statement, after those of the handlers' writes and sends and of the
# archive of the caller's message. The outputs arrive as one JSON object by step name, spliced from
# each output's encoding, so no output is encoded twice. ``_store`` adds the statement's own SELECT.
_STORE_SQL = f"""
new_steps AS (
    INSERT INTO {_STEP_TABLE} (run_id, name, status, depends_on, remaining_deps, attempts, attempts_base,
                               task_msg_id, output, error, queued_at, started_at, finished_at)
    SELECT %s, s.name, s.status, s.depends_on, s.remaining_deps, s.attempts, 0,
           s.task_msg_id, (%s::jsonb) -> s.name, s.error, s.queued_at, s.started_at, s.finished_at
    FROM jsonb_to_recordset(%s::jsonb) AS s(
        name text, status text, depends_on jsonb, remaining_deps integer, attempts integer,
        task_msg_id bigint, error text, queued_at timestamptz, started_at timestamptz,
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
), run_outcome AS (
    UPDATE {_RUN_TABLE} SET status = %s, remaining_steps = %s, error = %s, failed_step = %s, finished_at = %s,
        updated_at = clock_timestamp()
    WHERE id = %s
)
"""
# A send or an archive as a WITH query. A SELECT in WITH runs only as far as the rest of the
# statement reads it, so the final SELECT counts the rows of each.
_SEND_SQL = "SELECT msg_id FROM pgmq.send(%s, %s::jsonb) AS sent(msg_id)"
_ARCHIVE_SQL = "SELECT archived FROM pgmq.archive(%s, %s::bigint) AS result(archived)"


# The writes and sends that handlers of the running eager attempt passed to
# ``execute_with_completion`` and ``send_with_completion``; None while no eager attempt runs in
# this thread.
_pending_writes: ContextVar[list | None] = ContextVar("quantum_flow_pending_writes", default=None)


@dataclass(frozen=True)
class _DeferredWrite:
    sql: str
    params: list
    is_function_call: bool  # True for a pgmq send or archive, which the final SELECT must read


def execute_with_completion(sql: str, params: Sequence = ()) -> None:
    """Execute a step handler's write as part of the step's completion.

    ``sql`` is one INSERT, UPDATE or DELETE with ``%s`` placeholders, without a trailing semicolon.
    In an eager run it becomes a WITH query of the run's final statement, which saves a round trip
    and the savepoint that a statement of the handler would set. Anywhere else (in the step worker,
    or outside a handler) it executes at once in the current transaction. In an eager run the write:

    - is dropped when the attempt fails, as a savepoint would undo it;
    - runs after the last handler, in one statement with the step rows and the other handed-over
      writes. PostgreSQL runs the WITH queries of a statement on one snapshot, so the write cannot
      read their changes and must not touch quantum_flow's tables or a row that another write changes;
    - fails the final statement when it fails (on a constraint, say), so the whole run rolls back
      with the caller's transaction instead of the attempt failing.
    """
    statement = sql.strip()
    if statement[:6].upper() not in ("INSERT", "UPDATE", "DELETE") or statement.endswith(";"):
        raise ValueError(
            "execute_with_completion needs one INSERT, UPDATE or DELETE without a trailing semicolon, "
            f"not {statement[:40]!r}."
        )
    pending = _pending_writes.get()
    if pending is None:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
    else:
        pending.append(_DeferredWrite(statement, list(params), is_function_call=False))


def send_with_completion(queue: str, body) -> None:
    """Send ``body`` to ``queue``, without a delay, as part of the step's completion.

    In an eager run the run's final statement sends it, with the same consequences as for
    ``execute_with_completion``: the message is dropped when the attempt fails, and a failed send
    rolls back the whole run with the caller's transaction. Anywhere else it is sent at once. The
    message id is not returned, because an eager run has none before its final statement.
    """
    from singularity.models import Queue

    pending = _pending_writes.get()
    if pending is None:
        Queue.objects.send(queue, body)
        return
    validate_queue_name(queue)
    try:
        # Encoded now, so a body that is not JSON fails the attempt and not the final statement.
        encoded = json.dumps(body, cls=DjangoJSONEncoder, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"The message body for queue {queue!r} cannot be sent as JSON: {exc}.") from exc
    pending.append(_DeferredWrite(_SEND_SQL, [queue, encoded], is_function_call=True))


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
    encoded_output: str | None = None  # the output as JSON text, written to the step row
    error: str = ""
    retry_delay: float | None = None
    task_msg_id: int | None = None
    queued_at: object = None
    started_at: object = None
    finished_at: object = None
    attempts: list[_AttemptRecord] = field(default_factory=list)


def execute_eagerly(flow: type[Flow], run_id, input, archive_message: tuple[str, int] | None = None) -> tuple[str, dict]:
    """Run the steps of the new run ``run_id`` until none is ready and store the outcome.

    ``archive_message``, a pgmq message as ``(queue, msg_id)``, is archived by the final statement.
    Returns the run's status and the outputs of its completed steps by step name.
    """
    records = {
        step.name: _StepRecord(step.name, step.depends_on, len(step.depends_on)) for step in flow.steps
    }
    ready = deque(flow.root_steps)
    queued_at = timezone.now()
    for name in ready:
        records[name].status = StepStatus.QUEUED
        records[name].queued_at = queued_at
    run_error, failed_step = "", ""
    run_id_text = str(run_id)
    worker = worker_name()
    writes: list[_DeferredWrite] = []
    if archive_message is not None:
        queue, msg_id = archive_message
        writes.append(_DeferredWrite(_ARCHIVE_SQL, [validate_queue_name(queue), msg_id], is_function_call=True))

    while ready:
        record = records[ready.popleft()]
        definition = flow.step_map[record.name]
        max_attempts = max_attempts_of(flow, record.name)
        context = StepContext(
            run_id=run_id_text,
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
        pending: list[_DeferredWrite] = []
        try:
            token = _pending_writes.set(pending)
            try:
                with connection.execute_wrapper(savepoint):
                    output = definition.handler(context)
            finally:
                _pending_writes.reset(token)
            elapsed = time.monotonic() - started
            if definition.timeout is not None and elapsed > definition.timeout:
                raise StepTimedOut(
                    f"attempt took {elapsed:.3f} s, more than the step's timeout of {definition.timeout:g} s"
                )
            if isinstance(output, Wait):
                raise StepFailed("the handler returned Wait, but an eager run cannot wait: start the flow without eager=True")
            encoded = _encode_output(output)
        except Exception as exc:  # noqa: BLE001 - recorded on the attempt, then retried through the queue or final
            savepoint.rollback()
            if isinstance(exc, (StepFailed, StepTimedOut, RetryLater)):
                error = str(exc)
            else:
                error = f"{type(exc).__name__}: {exc}"
            status = AttemptStatus.TIMED_OUT if isinstance(exc, StepTimedOut) else AttemptStatus.FAILED
            _finish_attempt(attempt, status, started, error)
            record.error = error
            ids = {"flow": flow.slug, "run_id": run_id_text, "step": record.name, "attempt": 1}
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

        writes.extend(pending)
        _finish_attempt(attempt, AttemptStatus.SUCCEEDED, started)
        record.status = StepStatus.COMPLETED
        # Dependents receive the output as JSON decodes it, as they would from a worker.
        record.output = json.loads(encoded)
        record.encoded_output = encoded
        record.finished_at = attempt.finished_at
        for dependent in flow.dependents[record.name]:
            dependent_record = records[dependent]
            dependent_record.remaining_deps -= 1
            if dependent_record.remaining_deps == 0:
                dependent_record.status = StepStatus.QUEUED
                dependent_record.queued_at = record.finished_at
                ready.append(dependent)

    status = _store(flow, run_id, records, run_error, failed_step, writes)
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


def _encode_output(output) -> str:
    try:
        return json.dumps(output, cls=DjangoJSONEncoder, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StepFailed(f"the handler returned an output that is not JSON: {exc}") from exc


def _finish_attempt(attempt: _AttemptRecord, status: str, started: float, error: str = "") -> None:
    attempt.status = status
    attempt.error = error
    attempt.finished_at = timezone.now()
    attempt.duration_ms = round((time.monotonic() - started) * 1000, 3)


def _isoformat(moment) -> str | None:
    return moment.isoformat() if moment is not None else None


def _store(
    flow: type[Flow],
    run_id,
    records: dict[str, _StepRecord],
    run_error: str,
    failed_step: str,
    writes: list[_DeferredWrite],
) -> str:
    """Write the step rows, their attempts, the handlers' writes and sends, the retry tasks and the run's status.

    ``writes`` also contains the archive of the caller's message, if any.
    """
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
            "error": record.error if record.status != StepStatus.COMPLETED else "",
            "queued_at": _isoformat(record.queued_at),
            "started_at": _isoformat(record.started_at),
            "finished_at": _isoformat(record.finished_at),
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
            "started_at": _isoformat(attempt.started_at),
            "finished_at": _isoformat(attempt.finished_at),
            "duration_ms": attempt.duration_ms,
        }
        for record in records.values()
        for attempt in record.attempts
    ]
    # Step names match [a-z][a-z0-9_]* (checked when the flow is defined), so they need no escaping.
    # A None output is left out, so its step row stores SQL NULL.
    outputs = "{%s}" % ",".join(
        f'"{record.name}":{record.encoded_output}'
        for record in records.values()
        if record.encoded_output is not None and record.encoded_output != "null"
    )
    deferred_queries = "".join(f"deferred_{index} AS ({write.sql}),\n" for index, write in enumerate(writes))
    function_calls = [
        f"SELECT count(*) FROM deferred_{index}" for index, write in enumerate(writes) if write.is_function_call
    ]
    final_select = " UNION ALL ".join(function_calls) if function_calls else "SELECT NULL"
    params = [param for write in writes for param in write.params]
    params += [
        run_id, outputs, json.dumps(steps), json.dumps(attempts),
        status, remaining, run_error, failed_step, now if status != RunStatus.RUNNING else None, run_id,
    ]
    with connection.cursor() as cursor:
        # One statement writes the steps, their attempts, the handlers' writes and sends, and the
        # run's outcome, and archives the caller's message: on a loaded machine each round trip costs
        # more than the SQL it carries.
        cursor.execute(f"WITH {deferred_queries}{_STORE_SQL}{final_select}", params)
    if status == RunStatus.COMPLETED and logger.isEnabledFor(logging.INFO):
        logger.info("flow.run_completed", extra={"flow": flow.slug, "run_id": str(run_id)})
    return status
