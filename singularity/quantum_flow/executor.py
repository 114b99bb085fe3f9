"""Run one step task: claim an attempt, run the handler, then complete the step or record the failure.

Every state change is a conditional update, and the row count decides what happens next. A
transaction that locks both a run row and its step rows locks the run first (here and in
``runs.py``), which keeps concurrent workers and ``cancel_run`` from deadlocking on each other:

1. Claim, committed before the handler runs: one statement marks a queued step running (only while
   its run is running and the task is the step's current one), records the attempt and hides the
   task for it. It locks only the step row. Otherwise a locked path discards the task, or takes
   over an attempt whose worker vanished. Committing the claim first means a crash mid-handler
   still spends an attempt, so a step that kills its worker cannot loop forever.
2. Run the handler in a second transaction with the completion. The run's ``remaining_steps``
   drops only while the run is running, and the step completes only while it is running this very
   attempt. Dependents whose last dependency this was get their tasks, and the task is archived.
   If either condition fails (the run was cancelled, a newer attempt took over), the handler's
   writes roll back and the attempt is discarded, so a step completes at most once.
3. On an error or a timeout, the handler's writes roll back and a third transaction either hides the
   task for the backoff (``set_vt``) or, after the last attempt, fails the run and cancels its
   unfinished steps.

A handler that returns ``Wait`` takes step 2 differently: its writes commit with the step marked
``waiting`` (see ``events.py``), and its task stays hidden until the wait's deadline. An event
completes the step in the meantime and archives the task; a task that shows up again after the
deadline fails the step and the run.
"""
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from singularity.messaging.runtime import RetryLater

from .definitions import Flow, StepContext
from .errors import StepFailed, StepTimedOut
from .events import InvalidEvent, Wait, lock_event
from .models import AttemptStatus, FlowEvent, FlowRun, RunStatus, StepAttempt, StepState, StepStatus

logger = logging.getLogger(__name__)

# Seconds a task stays hidden beyond its step's timeout, so the worker running it can record the
# timeout itself before another worker takes the task over.
TIMEOUT_GRACE_SECONDS = 5.0
_HOST = socket.gethostname()
_RUN_TABLE = FlowRun._meta.db_table
_STEP_TABLE = StepState._meta.db_table
_ATTEMPT_TABLE = StepAttempt._meta.db_table

# The claim of a queued step in one autocommitted statement. It marks the step running only while
# its run is running and the task is the step's current one, records the attempt and hides the
# task for it. It returns the run's input and the dependencies' outputs, and locks only the step row.
_CLAIM_SQL = f"""
WITH claimed AS (
    UPDATE {_STEP_TABLE} AS step
    SET status = %(running)s, attempts = step.attempts + 1, started_at = clock_timestamp()
    FROM {_RUN_TABLE} AS run
    WHERE step.run_id = %(run_id)s AND step.name = %(step)s AND step.status = %(queued)s
      AND step.task_msg_id = %(msg_id)s AND run.id = step.run_id AND run.status = %(run_running)s
    RETURNING step.id, step.attempts, step.attempts_base, step.started_at, run.input
), attempt AS (
    INSERT INTO {_ATTEMPT_TABLE} (step_id, number, status, msg_id, worker, error, started_at)
    SELECT id, attempts, %(attempt_running)s, %(msg_id)s, %(worker)s, '', started_at FROM claimed
)
SELECT claimed.id, claimed.attempts, claimed.attempts_base, claimed.input,
    (SELECT jsonb_object_agg(dependency.name, dependency.output) FROM {_STEP_TABLE} AS dependency
     WHERE dependency.run_id = %(run_id)s AND dependency.name = ANY(%(dependencies)s::text[])),
    (SELECT hidden.vt FROM pgmq.set_vt(%(queue)s, %(msg_id)s::bigint,
        clock_timestamp() + make_interval(secs => %(hidden)s)) AS hidden)
FROM claimed
"""

_COMPLETE_SQL = f"""
WITH completed AS (
    UPDATE {_STEP_TABLE} SET status = %(completed)s, output = %(output)s::jsonb, error = '',
        finished_at = clock_timestamp()
    WHERE id = %(step_id)s AND status = %(running)s AND attempts = %(attempt)s
    RETURNING id
), attempt AS (
    UPDATE {_ATTEMPT_TABLE} SET status = %(succeeded)s, finished_at = clock_timestamp(), duration_ms = %(duration_ms)s
    WHERE step_id IN (SELECT id FROM completed) AND number = %(attempt)s
)
SELECT count(*) FROM completed
"""

_RELEASE_SQL = f"""
UPDATE {_STEP_TABLE} SET
    remaining_deps = remaining_deps - 1,
    status = CASE WHEN remaining_deps = 1 THEN %(queued)s ELSE status END,
    queued_at = CASE WHEN remaining_deps = 1 THEN clock_timestamp() ELSE queued_at END,
    task_msg_id = CASE WHEN remaining_deps = 1 THEN (
        SELECT pgmq.send(%(queue)s, jsonb_build_object('flow', %(flow)s::text, 'run_id', %(run_id)s::text, 'step', name))
    ) ELSE task_msg_id END
WHERE run_id = %(run_id)s AND name = ANY(%(names)s::text[]) AND status = %(pending)s
RETURNING name, remaining_deps, task_msg_id
"""


@dataclass(frozen=True)
class Task:
    """A step task: the pgmq message that requests one step of one run from a worker."""

    msg_id: int
    run_id: str
    step: str

    @classmethod
    def body(cls, flow: type[Flow], run_id: str, step: str) -> dict:
        return {"flow": flow.slug, "run_id": str(run_id), "step": step}


class StepOutcome:
    """The outcome of one task, as returned by ``execute_task``."""

    COMPLETED = "completed"
    WAITING = "waiting"
    RETRYING = "retrying"
    RUN_FAILED = "run_failed"
    DISCARDED = "discarded"


@dataclass
class TaskResult:
    outcome: str
    sent: list[Task] = field(default_factory=list)  # tasks of the dependents this completion made ready


class _Discard(Exception):
    """Rolls back a completion whose run or step changed underneath it."""


@dataclass
class _Claim:
    """An attempt this worker holds, with what its handler needs."""

    run_id: str
    step_id: int
    attempt: int  # the step's attempt counter, over every retry of the run
    attempts_base: int  # the counter when the current attempt budget started
    max_attempts: int
    input: Any
    outputs: dict


def worker_name() -> str:
    return f"{_HOST}:{os.getpid()}:{threading.current_thread().name}"


def max_attempts_of(flow: type[Flow], step_name: str) -> int:
    return flow.step_map[step_name].max_attempts or settings.WORKER_MAX_ATTEMPTS


def backoff_seconds(flow: type[Flow], step_name: str, attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``: the step's ``base_delay * 2^(attempt-1)``, capped."""
    exponent = min(max(attempt - 1, 0), 1000)  # 2.0 ** 1024 overflows; the cap is reached long before
    delay = flow.step_map[step_name].base_delay * 2.0**exponent
    return min(delay, settings.WORKER_BACKOFF_MAX_SECONDS)


def execute_task(flow: type[Flow], task: Task) -> TaskResult:
    """Run ``task`` once as described in the module docstring and return what happened."""
    from singularity.models import Queue

    queue = flow.queue_name()
    ids = {"flow": flow.slug, "run_id": task.run_id, "step": task.step, "msg_id": task.msg_id}
    claim = _claim(flow, task, ids=ids)
    if not isinstance(claim, _Claim):
        return TaskResult(claim)

    definition = flow.step_map[task.step]
    context = StepContext(
        run_id=task.run_id,
        flow=flow.slug,
        step=task.step,
        input=claim.input,
        outputs=claim.outputs,
        attempt=claim.attempt - claim.attempts_base,
        max_attempts=claim.max_attempts,
    )
    started = time.monotonic()
    if definition.timeout is not None:
        context.deadline = started + definition.timeout

    try:
        with transaction.atomic():
            output = definition.handler(context)
            elapsed = time.monotonic() - started
            if definition.timeout is not None and elapsed > definition.timeout:
                raise StepTimedOut(
                    f"attempt took {elapsed:.3f} s, more than the step's timeout of {definition.timeout:g} s"
                )
            if isinstance(output, Wait):
                sent = _start_waiting(flow, claim, task, output, elapsed)
            else:
                sent = _complete(flow, claim, task, _encode_output(output), elapsed)
            if sent is not None:
                Queue.objects.archive(queue, task.msg_id)
    except _Discard as exc:
        _close_attempt(claim, AttemptStatus.DISCARDED, str(exc), started)
        logger.info("flow.task_discarded", extra={**ids, "reason": str(exc), "attempt": claim.attempt})
        return TaskResult(StepOutcome.DISCARDED)
    except Exception as exc:  # noqa: BLE001 - every handler error is recorded on the attempt, then retried or final
        logger.debug("flow.step_traceback", exc_info=True, extra=ids)
        return TaskResult(_record_failure(flow, claim, task, exc, started, ids=ids))

    if sent is None:
        logger.debug("flow.step_waiting", extra={**ids, "event": output.event, "key": output.key})
        return TaskResult(StepOutcome.WAITING)
    logger.debug("flow.step_completed", extra={**ids, "attempt": claim.attempt, "duration_ms": round(elapsed * 1000, 2)})
    return TaskResult(StepOutcome.COMPLETED, sent)


# --- 1. claim ----------------------------------------------------------------------------------


def _claim(flow: type[Flow], task: Task, *, ids: dict) -> _Claim | str:
    """Claim an attempt: one statement for a queued step, else the locked path for the other cases."""
    definition = flow.step_map[task.step]
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            {
                "run_id": task.run_id,
                "step": task.step,
                "msg_id": task.msg_id,
                "queued": StepStatus.QUEUED,
                "running": StepStatus.RUNNING,
                "run_running": RunStatus.RUNNING,
                "attempt_running": AttemptStatus.RUNNING,
                "worker": worker_name(),
                "dependencies": list(definition.depends_on),
                "queue": flow.queue_name(),
                "hidden": _hidden_seconds(definition),
            },
        )
        row = cursor.fetchone()
    if row is not None:
        step_id, attempt, attempts_base, run_input, outputs, _hidden_until = row
        return _Claim(
            task.run_id, step_id, attempt, attempts_base, max_attempts_of(flow, task.step),
            _loads(run_input), _loads(outputs) or {},
        )
    return _claim_locked(flow, task, ids=ids)


def _hidden_seconds(definition) -> float:
    """Seconds a claimed task stays hidden: the step's timeout plus grace, or the visibility timeout."""
    if definition.timeout is not None:
        return definition.timeout + TIMEOUT_GRACE_SECONDS
    return float(settings.WORKER_VISIBILITY_TIMEOUT_SECONDS)


def _loads(value):
    # Django registers a text loader for jsonb on psycopg 3, so raw queries return JSON as text.
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _claim_locked(flow: type[Flow], task: Task, *, ids: dict) -> _Claim | str:
    """Claim under row locks when the fast path found no queued step: discard, or take over a vanished attempt."""
    from singularity.models import Queue

    queue = flow.queue_name()
    now = timezone.now()
    with transaction.atomic():
        run = FlowRun.objects.select_for_update().filter(pk=task.run_id).first()
        step = (
            StepState.objects.select_for_update().filter(run_id=task.run_id, name=task.step).first()
            if run is not None
            else None
        )
        if run is not None and step is not None and step.status == StepStatus.WAITING:
            return _check_wait_deadline(flow, run, step, task, now, ids)
        reason = _discard_reason(run, step, task)
        if reason:
            Queue.objects.archive(queue, task.msg_id)
            logger.info("flow.task_discarded", extra={**ids, "reason": reason})
            return StepOutcome.DISCARDED

        max_attempts = max_attempts_of(flow, step.name)
        if step.status == StepStatus.RUNNING:
            # The previous attempt never recorded an outcome: its worker died, or it is still
            # running past its timeout. Either way it counts as a failed attempt.
            verdict = _close_vanished_attempt(flow, run, step, task, max_attempts, now, ids)
            if verdict is not None:
                return verdict

        step.attempts += 1
        step.status = StepStatus.RUNNING
        step.started_at = now
        step.save(update_fields=["attempts", "status", "started_at"])
        StepAttempt.objects.create(
            step=step, number=step.attempts, msg_id=task.msg_id, worker=worker_name(), started_at=now
        )
        Queue.objects.set_vt(queue, task.msg_id, _hidden_seconds(flow.step_map[step.name]))
        outputs = _dependency_outputs(run, flow.step_map[step.name].depends_on)
    return _Claim(str(run.pk), step.pk, step.attempts, step.attempts_base, max_attempts, run.input, outputs)


def _check_wait_deadline(flow: type[Flow], run: FlowRun, step: StepState, task: Task, now, ids: dict) -> str:
    """Handle the task of a waiting step that became visible: fail the step past its deadline, else hide it again."""
    from singularity.models import Queue

    queue = flow.queue_name()
    if run.status != RunStatus.RUNNING or step.task_msg_id != task.msg_id or step.wait_deadline is None:
        Queue.objects.archive(queue, task.msg_id)
        return StepOutcome.DISCARDED
    if now < step.wait_deadline:
        # Shown early (its visibility timeout was changed by hand): hide it until the deadline.
        Queue.objects.set_vt(queue, task.msg_id, (step.wait_deadline - now).total_seconds())
        return StepOutcome.WAITING
    waited = (now - step.started_at).total_seconds() if step.started_at else None
    error = (
        f"no {step.wait_event!r} event arrived for key {step.wait_key!r} before the wait's deadline "
        f"({step.wait_deadline.isoformat(timespec='seconds')}"
        + (f", after {waited:.0f} s" if waited is not None else "")
        + ")"
    )
    _fail_run(flow, run, step, error, now)
    logger.error("flow.wait_timed_out", extra={**ids, "event": step.wait_event, "key": step.wait_key})
    return StepOutcome.RUN_FAILED


def _discard_reason(run: FlowRun | None, step: StepState | None, task: Task) -> str | None:
    if run is None or step is None:
        return "the run or step no longer exists"
    if run.status != RunStatus.RUNNING:
        return f"the run is {run.status}"
    if step.status not in (StepStatus.QUEUED, StepStatus.RUNNING):
        return f"the step is {step.status}"
    if step.task_msg_id != task.msg_id:
        return f"a newer task ({step.task_msg_id}) replaced this one"
    return None


def _close_vanished_attempt(
    flow: type[Flow], run: FlowRun, step: StepState, task: Task, max_attempts: int, now, ids: dict
) -> str | None:
    """Close the attempt a vanished worker left running; return an outcome if no new attempt may start now."""
    from singularity.models import Queue

    timeout = flow.step_map[step.name].timeout
    timed_out = timeout is not None and step.started_at is not None and (now - step.started_at).total_seconds() > timeout
    status = AttemptStatus.TIMED_OUT if timed_out else AttemptStatus.ABANDONED
    error = (
        f"attempt ran longer than the step's timeout of {timeout:g} s"
        if timed_out
        else "the worker stopped before recording an outcome (killed, or its connection was lost)"
    )
    StepAttempt.objects.filter(step=step, number=step.attempts, status=AttemptStatus.RUNNING).update(
        status=status, error=error, finished_at=now
    )
    used = step.attempts - step.attempts_base
    logger.warning(
        "flow.attempt_vanished", extra={**ids, "attempt": used, "max_attempts": max_attempts, "error": error}
    )
    if used >= max_attempts:
        _fail_run(flow, run, step, f"{error} (attempt {used} of {max_attempts})", now)
        logger.error("flow.run_failed", extra={**ids, "attempt": used, "error": error})
        return StepOutcome.RUN_FAILED
    delay = backoff_seconds(flow, step.name, used)
    if delay > 0:
        step.status = StepStatus.QUEUED
        step.error = error
        step.save(update_fields=["status", "error"])
        Queue.objects.set_vt(flow.queue_name(), task.msg_id, delay)
        return StepOutcome.RETRYING
    return None


def _dependency_outputs(run: FlowRun, names: tuple[str, ...]) -> dict:
    if not names:
        return {}
    return dict(StepState.objects.filter(run=run, name__in=names).values_list("name", "output"))


def _encode_output(output) -> str:
    try:
        return json.dumps(output, cls=DjangoJSONEncoder, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StepFailed(f"the handler returned an output that is not JSON: {exc}") from exc


# --- 2. complete -------------------------------------------------------------------------------


def _complete(flow: type[Flow], claim: _Claim, task: Task, encoded_output: str, elapsed: float) -> list[Task]:
    """Complete the step and send the tasks of dependents it made ready; raise ``_Discard`` if too late."""
    with connection.cursor() as cursor:
        # The run first, in the lock order of the module docstring. Its row lock also serializes
        # every completion of this run until commit.
        cursor.execute(
            f"UPDATE {_RUN_TABLE} SET remaining_steps = remaining_steps - 1, updated_at = clock_timestamp(), "
            "status = CASE WHEN remaining_steps = 1 THEN %s ELSE status END, "
            "finished_at = CASE WHEN remaining_steps = 1 THEN clock_timestamp() ELSE finished_at END "
            "WHERE id = %s AND status = %s RETURNING remaining_steps",
            [RunStatus.COMPLETED, claim.run_id, RunStatus.RUNNING],
        )
        row = cursor.fetchone()
        if row is None:
            raise _Discard("the run stopped running while the step ran")
        run_finished = row[0] == 0

        cursor.execute(
            _COMPLETE_SQL,
            {
                "completed": StepStatus.COMPLETED,
                "running": StepStatus.RUNNING,
                "succeeded": AttemptStatus.SUCCEEDED,
                "output": encoded_output,
                "step_id": claim.step_id,
                "attempt": claim.attempt,
                "duration_ms": round(elapsed * 1000, 3),
            },
        )
        if cursor.fetchone()[0] != 1:
            raise _Discard("a newer attempt took the step over, or it already completed")

    sent = _release_dependents(flow, claim.run_id, task.step)
    if run_finished:
        logger.info("flow.run_completed", extra={"flow": flow.slug, "run_id": claim.run_id})
    return sent


def _release_dependents(flow: type[Flow], run_id, step_name: str) -> list[Task]:
    """Count one completed dependency on each dependent, and send the task of each that has none left.

    One statement decrements the counts and sends the tasks: a dependent whose count goes from 1
    to 0 gets its task from ``pgmq.send`` inside the UPDATE. The run row lock taken by
    ``_complete`` serializes the completions of a run, so exactly one of them brings a count to 0.
    """
    dependents = flow.dependents[step_name]
    if not dependents:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            _RELEASE_SQL,
            {
                "queued": StepStatus.QUEUED,
                "pending": StepStatus.PENDING,
                "queue": flow.queue_name(),
                "flow": flow.slug,
                "run_id": str(run_id),
                "names": list(dependents),
            },
        )
        rows = cursor.fetchall()
    return sorted(
        (Task(msg_id, str(run_id), name) for name, remaining, msg_id in rows if remaining == 0),
        key=lambda task: task.step,
    )


def send_step_tasks(flow: type[Flow], run_id, names: list[str]) -> list[Task]:
    """Send one task per step in ``names`` and mark those steps queued with their task's ``msg_id``."""
    from singularity.models import Queue

    if not names:
        return []
    msg_ids = Queue.objects.send_batch(flow.queue_name(), [Task.body(flow, run_id, name) for name in names])
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {StepState._meta.db_table} AS step SET status = %s, task_msg_id = sent.msg_id, "
            "queued_at = clock_timestamp() FROM unnest(%s::text[], %s::bigint[]) AS sent(name, msg_id) "
            "WHERE step.run_id = %s AND step.name = sent.name",
            [StepStatus.QUEUED, names, msg_ids, run_id],
        )
    return [Task(msg_id, str(run_id), name) for name, msg_id in zip(names, msg_ids)]


def _start_waiting(flow: type[Flow], claim: _Claim, task: Task, wait: Wait, elapsed: float) -> list[Task] | None:
    """Mark the step waiting for ``wait``'s event and hide its task until the deadline; return None.

    If the event was delivered and kept before this step started waiting, complete the step with it
    at once instead and return the tasks that completion sent, as ``_complete`` does.
    """
    from singularity.models import Queue

    lock_event(wait.event, wait.key)
    kept_event = FlowEvent.objects.filter(event=wait.event, key=wait.key).values_list("payload").first()
    if kept_event is not None:
        return _complete(flow, claim, task, _encode_output(kept_event[0]), elapsed)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_RUN_TABLE} SET updated_at = clock_timestamp() WHERE id = %s AND status = %s RETURNING id",
            [claim.run_id, RunStatus.RUNNING],
        )
        if cursor.fetchone() is None:
            raise _Discard("the run stopped running while the step ran")
        cursor.execute(
            f"UPDATE {_STEP_TABLE} SET status = %s, wait_event = %s, wait_key = %s, error = '', "
            "wait_deadline = clock_timestamp() + make_interval(secs => %s) "
            "WHERE id = %s AND status = %s AND attempts = %s RETURNING id",
            [StepStatus.WAITING, wait.event, wait.key, wait.timeout, claim.step_id, StepStatus.RUNNING, claim.attempt],
        )
        if cursor.fetchone() is None:
            raise _Discard("a newer attempt took the step over, or it already completed")
        cursor.execute(
            f"UPDATE {_ATTEMPT_TABLE} SET status = %s, finished_at = clock_timestamp(), duration_ms = %s "
            "WHERE step_id = %s AND number = %s",
            [AttemptStatus.SUCCEEDED, round(elapsed * 1000, 3), claim.step_id, claim.attempt],
        )
    if wait.timeout is None:
        Queue.objects.archive(flow.queue_name(), task.msg_id)
    else:
        Queue.objects.set_vt(flow.queue_name(), task.msg_id, wait.timeout)
    return None


# --- 3. record a failure -----------------------------------------------------------------------


def _record_failure(flow: type[Flow], claim: _Claim, task: Task, exc: Exception, started: float, *, ids: dict) -> str:
    """Hide the task for the backoff, or fail the run after the last attempt; return the outcome."""
    from singularity.models import Queue

    error = (
        str(exc) if isinstance(exc, (StepFailed, StepTimedOut, RetryLater, InvalidEvent)) else f"{type(exc).__name__}: {exc}"
    )
    status = AttemptStatus.TIMED_OUT if isinstance(exc, StepTimedOut) else AttemptStatus.FAILED
    used = claim.attempt - claim.attempts_base
    now = timezone.now()
    with transaction.atomic():
        run = FlowRun.objects.select_for_update().get(pk=claim.run_id)
        step = StepState.objects.select_for_update().get(pk=claim.step_id)
        if run.status != RunStatus.RUNNING or step.status != StepStatus.RUNNING or step.attempts != claim.attempt:
            _close_attempt(claim, AttemptStatus.DISCARDED, error, started)
            logger.info("flow.task_discarded", extra={**ids, "reason": "run or step changed", "error": error})
            return StepOutcome.DISCARDED

        # An invalid Wait is a mistake in the handler, which no retry can fix.
        final = isinstance(exc, (StepFailed, InvalidEvent)) or used >= claim.max_attempts
        if not final:
            delay = exc.delay if isinstance(exc, RetryLater) and exc.delay is not None else backoff_seconds(flow, step.name, used)
            _close_attempt(claim, status, error, started, retry_delay=delay)
            step.status = StepStatus.QUEUED
            step.error = error
            step.save(update_fields=["status", "error"])
            Queue.objects.set_vt(flow.queue_name(), task.msg_id, delay)
            logger.warning(
                "flow.step_retrying",
                extra={**ids, "attempt": used, "max_attempts": claim.max_attempts, "delay_s": delay, "error": error},
            )
            return StepOutcome.RETRYING

        _close_attempt(claim, status, error, started)
        _fail_run(flow, run, step, f"{error} (attempt {used} of {claim.max_attempts})", now)
    logger.error(
        "flow.run_failed", extra={**ids, "attempt": used, "max_attempts": claim.max_attempts, "error": error}
    )
    return StepOutcome.RUN_FAILED


def _close_attempt(claim: _Claim, status: str, error: str, started: float, *, retry_delay: float | None = None) -> None:
    StepAttempt.objects.filter(step_id=claim.step_id, number=claim.attempt).update(
        status=status,
        error=error,
        retry_delay_s=retry_delay,
        finished_at=timezone.now(),
        duration_ms=round((time.monotonic() - started) * 1000, 3),
    )


def _fail_run(flow: type[Flow], run: FlowRun, step: StepState, error: str, now) -> None:
    """Fail ``step`` and its run, cancel the run's unfinished steps and archive their tasks.

    The caller holds the run's and the step's row locks.
    """
    from singularity.models import Queue

    step.status = StepStatus.FAILED
    step.error = error
    step.finished_at = now
    step.save(update_fields=["status", "error", "finished_at"])
    run.status = RunStatus.FAILED
    run.error = f"step {step.name!r} failed: {error}"
    run.failed_step = step.name
    run.finished_at = now
    run.save(update_fields=["status", "error", "failed_step", "finished_at", "updated_at"])
    cancel_unfinished_steps(flow, run, now)
    if step.task_msg_id is not None:
        Queue.objects.archive(flow.queue_name(), step.task_msg_id)
    flow.on_run_stopped(run)


def cancel_unfinished_steps(flow: type[Flow], run: FlowRun, now) -> int:
    """Cancel the run's steps that have not finished and archive their queued tasks; return how many."""
    from singularity.models import Queue

    unfinished = StepState.objects.filter(
        run=run, status__in=[StepStatus.PENDING, StepStatus.QUEUED, StepStatus.RUNNING, StepStatus.WAITING]
    )
    msg_ids = [msg_id for msg_id in unfinished.exclude(task_msg_id=None).values_list("task_msg_id", flat=True)]
    # An attempt still running belongs to a worker that is busy or gone. A busy worker records
    # ``discarded`` again when it finishes, and a gone one never would.
    StepAttempt.objects.filter(step__in=unfinished, status=AttemptStatus.RUNNING).update(
        status=AttemptStatus.DISCARDED, error=f"the run stopped ({run.status}) during this attempt", finished_at=now
    )
    count = unfinished.update(status=StepStatus.CANCELLED, finished_at=now)
    if msg_ids:
        Queue.objects.archive_batch(flow.queue_name(), msg_ids)
    return count
