"""The quantum_flow engine against PostgreSQL: DAG order, retries, failure, timeout, cancellation, restart.

The step worker here is the real consumer runtime (``ConsumerWorker.run_once``) in this process;
tests/test_quantum_flow_worker.py runs it as ``manage.py run_workers`` processes.
"""
import threading
import time
import uuid

import pytest
from django.db import ProgrammingError, connection, transaction

from singularity.messaging.notifications import get_hub
from singularity.messaging.registry import registered_consumers
from singularity.messaging.runtime import ConsumerWorker
from singularity.quantum_flow import RunConflict, RunStateError, cancel_run, retry_run, start_flow
from singularity.quantum_flow.eager import execute_with_completion
from singularity.quantum_flow.models import AttemptStatus, FlowRun, RunStatus, StepAttempt, StepState, StepStatus
from tests.conftest import wait_for
from tests.quantum_flow_flows import (
    EFFECTS_QUEUE,
    GATES,
    HAND_OVER_TABLE,
    REPAIRED_RUNS,
    DiamondFlow,
    FailingFlow,
    GatedFlow,
    HandOverFlow,
    RefusingFlow,
    RepairableFlow,
    RetryFlow,
    TimeoutFlow,
)

pytestmark = pytest.mark.django_db(transaction=True)

RUN_TIMEOUT = 15  # seconds; generous for a loaded machine, never a speed assertion


def step_worker(flow) -> ConsumerWorker:
    return ConsumerWorker(registered_consumers()[flow.queue_name()], get_hub())


def run_to_end(flow, run_id, *, timeout: float = RUN_TIMEOUT) -> FlowRun:
    """Handle the flow's tasks in this thread until the run leaves ``running``."""
    worker = step_worker(flow)
    deadline = time.monotonic() + timeout
    while True:
        run = FlowRun.objects.get(pk=run_id)
        if run.status != RunStatus.RUNNING:
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} still running after {timeout} s")
        if not worker.run_once():
            time.sleep(0.02)  # A retry is hidden for its backoff.


def effects(queues, run_id) -> list[dict]:
    return [message.body for message in queues.read(EFFECTS_QUEUE, vt=0, qty=1000) if message.body["run_id"] == str(run_id)]


def steps_of(run_id) -> dict[str, StepState]:
    return {step.name: step for step in StepState.objects.filter(run_id=run_id)}


def attempts_of(run_id, step: str) -> list[StepAttempt]:
    return list(StepAttempt.objects.filter(step__run_id=run_id, step__name=step).order_by("number"))


# --- the DAG ---------------------------------------------------------------------------------


def test_start_sends_root_task_only(flow_queues):
    run = start_flow(DiamondFlow, {"n": 1})

    [task] = flow_queues.read(DiamondFlow.queue_name(), vt=0, qty=10)
    assert task.body == {"flow": "test_diamond", "run_id": str(run.pk), "step": "a"}
    states = steps_of(run.pk)
    assert states["a"].status == StepStatus.QUEUED
    assert states["a"].task_msg_id == task.msg_id
    assert {states[name].status for name in "bcd"} == {StepStatus.PENDING}
    assert states["d"].remaining_deps == 2


def test_diamond_runs_join_once_with_both_outputs(flow_queues):
    run = start_flow(DiamondFlow, {"n": 1})

    finished = run_to_end(DiamondFlow, run.pk)

    assert finished.status == RunStatus.COMPLETED
    assert finished.finished_at is not None
    assert finished.remaining_steps == 0
    states = steps_of(run.pk)
    assert {state.status for state in states.values()} == {StepStatus.COMPLETED}
    assert states["d"].output["outputs"] == {
        "b": {"step": "b", "input": {"n": 1}, "saw": ["a"]},
        "c": {"step": "c", "input": {"n": 1}, "saw": ["a"]},
    }
    assert sorted(effect["step"] for effect in effects(flow_queues, run.pk)) == ["a", "b", "c", "d"]
    for name in "abcd":
        assert [attempt.status for attempt in attempts_of(run.pk, name)] == [AttemptStatus.SUCCEEDED]
    assert flow_queues.metrics(DiamondFlow.queue_name()).queue_length == 0


def test_concurrent_workers_complete_each_join_once(flow_queues):
    runs = [start_flow(DiamondFlow, {"n": index}) for index in range(12)]
    stop = threading.Event()

    def work():
        worker = step_worker(DiamondFlow)
        try:
            while not stop.is_set():
                if not worker.run_once():
                    time.sleep(0.01)
        finally:
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: FlowRun.objects.filter(flow="test_diamond", status=RunStatus.RUNNING).count() == 0, timeout=RUN_TIMEOUT)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)

    for run in runs:
        assert FlowRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED
        assert sorted(effect["step"] for effect in effects(flow_queues, run.pk)) == ["a", "b", "c", "d"]
    assert StepAttempt.objects.filter(step__run__flow="test_diamond", step__name="d").count() == len(runs)


# --- idempotent start ------------------------------------------------------------------------


def test_start_with_same_run_id_starts_once(flow_queues):
    run_id = uuid.uuid4()

    first = start_flow(DiamondFlow, {"n": 1}, run_id=run_id)
    second = start_flow(DiamondFlow, {"n": 2}, run_id=str(run_id))

    assert first.pk == second.pk == run_id
    assert FlowRun.objects.filter(pk=run_id).count() == 1
    assert second.input == {"n": 1}
    assert flow_queues.metrics(DiamondFlow.queue_name()).queue_length == 1


def test_start_with_run_id_of_other_flow_rejected(flow_queues):
    run_id = uuid.uuid4()
    start_flow(DiamondFlow, {}, run_id=run_id)

    with pytest.raises(RunConflict, match="'test_diamond', not 'test_retry'"):
        start_flow(RetryFlow, {}, run_id=run_id)


def test_start_after_completion_starts_nothing(flow_queues):
    run = start_flow(DiamondFlow, {"n": 1})
    run_to_end(DiamondFlow, run.pk)

    again = start_flow(DiamondFlow, {"n": 1}, run_id=run.pk)

    assert again.status == RunStatus.COMPLETED
    assert flow_queues.metrics(DiamondFlow.queue_name()).queue_length == 0


def test_input_must_be_json(flow_queues):
    with pytest.raises(ValueError, match="input of flow 'test_diamond' cannot be stored as JSON"):
        start_flow(DiamondFlow, {"n": object()})


# --- retries and backoff ---------------------------------------------------------------------


def test_failed_attempt_hides_task_for_backoff(flow_queues):
    run = start_flow(RetryFlow, {"succeed_on": 3})
    worker = step_worker(RetryFlow)

    assert worker.run_once() == 1

    [attempt] = attempts_of(run.pk, "flaky")
    assert attempt.status == AttemptStatus.FAILED
    assert attempt.error == "ConnectionError: flaky failure on attempt 1"
    assert attempt.retry_delay_s == pytest.approx(0.2)
    assert steps_of(run.pk)["flaky"].status == StepStatus.QUEUED
    [hidden] = flow_queues.read(RetryFlow.queue_name(), vt=0, qty=10) or [None]
    assert hidden is None, "the retry must stay hidden during its backoff"
    assert 0 < flow_queues.seconds_until_next_visible(RetryFlow.queue_name()) <= 0.2


def test_retries_double_delay_then_succeed(flow_queues):
    run = start_flow(RetryFlow, {"succeed_on": 3})

    finished = run_to_end(RetryFlow, run.pk)

    assert finished.status == RunStatus.COMPLETED
    attempts = attempts_of(run.pk, "flaky")
    assert [attempt.number for attempt in attempts] == [1, 2, 3]
    assert [attempt.status for attempt in attempts] == [AttemptStatus.FAILED, AttemptStatus.FAILED, AttemptStatus.SUCCEEDED]
    assert [attempt.retry_delay_s for attempt in attempts] == [pytest.approx(0.2), pytest.approx(0.4), None]
    assert steps_of(run.pk)["flaky"].output == {"attempt": 3}
    assert [effect["step"] for effect in effects(flow_queues, run.pk)] == ["flaky", "after"]


def test_retry_later_delay_replaces_backoff(flow_queues):
    run = start_flow(RetryFlow, {"succeed_on": 2, "retry_after": 0.7})

    finished = run_to_end(RetryFlow, run.pk)

    assert finished.status == RunStatus.COMPLETED
    first = attempts_of(run.pk, "flaky")[0]
    assert first.retry_delay_s == pytest.approx(0.7)
    assert first.error == "provider requested a delay"


# --- final failure ---------------------------------------------------------------------------


def test_last_failed_attempt_fails_run(flow_queues):
    run = start_flow(FailingFlow, {})

    finished = run_to_end(FailingFlow, run.pk)

    assert finished.status == RunStatus.FAILED
    assert finished.failed_step == "broken"
    assert "step 'broken' failed" in finished.error
    assert "ValueError: broken on attempt 2" in finished.error
    assert "(attempt 2 of 2)" in finished.error
    states = steps_of(run.pk)
    assert states["broken"].status == StepStatus.FAILED
    assert states["last"].status == StepStatus.CANCELLED
    assert states["a"].status == StepStatus.COMPLETED
    attempts = attempts_of(run.pk, "broken")
    assert [(attempt.number, attempt.status) for attempt in attempts] == [(1, AttemptStatus.FAILED), (2, AttemptStatus.FAILED)]
    assert attempts[1].error == "ValueError: broken on attempt 2"
    assert "last" not in {effect["step"] for effect in effects(flow_queues, run.pk)}
    assert flow_queues.metrics(FailingFlow.queue_name()).queue_length == 0


def test_step_failed_skips_remaining_attempts(flow_queues):
    run = start_flow(RefusingFlow, {})

    finished = run_to_end(RefusingFlow, run.pk)

    assert finished.status == RunStatus.FAILED
    assert finished.error == "step 'refuse' failed: input can never work (attempt 1 of 5)"
    assert len(attempts_of(run.pk, "refuse")) == 1


# --- timeout ---------------------------------------------------------------------------------


def test_timeout_counts_as_failed_attempt(flow_queues):
    run = start_flow(TimeoutFlow, {"sleep": 0.4, "slow_attempts": [1]})

    finished = run_to_end(TimeoutFlow, run.pk)

    assert finished.status == RunStatus.COMPLETED
    first, second = attempts_of(run.pk, "slow")
    assert first.status == AttemptStatus.TIMED_OUT
    assert "more than the step's timeout of 0.2 s" in first.error
    assert second.status == AttemptStatus.SUCCEEDED
    # The timed-out attempt's writes rolled back: only the second attempt left an effect.
    assert [effect["attempt"] for effect in effects(flow_queues, run.pk)] == [2]


def test_timeouts_exhaust_attempts(flow_queues):
    run = start_flow(TimeoutFlow, {"sleep": 0.4, "slow_attempts": [1, 2]})

    finished = run_to_end(TimeoutFlow, run.pk)

    assert finished.status == RunStatus.FAILED
    assert "timeout of 0.2 s (attempt 2 of 2)" in finished.error
    assert [attempt.status for attempt in attempts_of(run.pk, "slow")] == [AttemptStatus.TIMED_OUT] * 2
    assert effects(flow_queues, run.pk) == []


# --- cancellation ----------------------------------------------------------------------------


def test_cancel_stops_queued_steps(flow_queues):
    run = start_flow(DiamondFlow, {})
    step_worker(DiamondFlow).run_once()  # a completes; b and c are queued

    cancel_run(run.pk, reason="operator request")

    cancelled = FlowRun.objects.get(pk=run.pk)
    assert cancelled.status == RunStatus.CANCELLED
    assert cancelled.error == "operator request"
    states = steps_of(run.pk)
    assert states["a"].status == StepStatus.COMPLETED
    assert {states[name].status for name in "bcd"} == {StepStatus.CANCELLED}
    assert flow_queues.metrics(DiamondFlow.queue_name()).queue_length == 0


def test_cancel_discards_step_in_flight(flow_queues):
    run = start_flow(GatedFlow, {})
    GATES[str(run.pk)] = threading.Event()
    worker = step_worker(GatedFlow)

    def work():
        try:
            worker.run_once()
        finally:
            from django.db import connection

            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    try:
        wait_for(lambda: StepAttempt.objects.filter(step__run_id=run.pk, status=AttemptStatus.RUNNING).exists())
        cancel_run(run.pk)
    finally:
        GATES[str(run.pk)].set()
        thread.join(10)

    [attempt] = attempts_of(run.pk, "wait")
    assert attempt.status == AttemptStatus.DISCARDED
    assert steps_of(run.pk)["wait"].status == StepStatus.CANCELLED
    assert steps_of(run.pk)["after"].status == StepStatus.CANCELLED
    assert effects(flow_queues, run.pk) == [], "the discarded attempt's writes must roll back"
    assert flow_queues.metrics(GatedFlow.queue_name()).queue_length == 0


def test_cancel_finished_run_rejected(flow_queues):
    run = start_flow(DiamondFlow, {})
    run_to_end(DiamondFlow, run.pk)

    with pytest.raises(RunStateError, match="is completed; only a running run can be cancelled"):
        cancel_run(run.pk)


# --- retry a failed run ----------------------------------------------------------------------


def test_retry_run_resumes_from_failed_step(flow_queues):
    run = start_flow(RepairableFlow, {})
    assert run_to_end(RepairableFlow, run.pk).status == RunStatus.FAILED
    REPAIRED_RUNS.add(str(run.pk))

    retry_run(run.pk)
    finished = run_to_end(RepairableFlow, run.pk)

    assert finished.status == RunStatus.COMPLETED
    assert finished.error == ""
    assert [attempt.number for attempt in attempts_of(run.pk, "fragile")] == [1, 2, 3]
    assert len(attempts_of(run.pk, "a")) == 1, "a completed step does not run again"
    assert [effect["step"] for effect in effects(flow_queues, run.pk)] == ["a", "fragile", "last"]


def test_retry_running_run_rejected(flow_queues):
    run = start_flow(DiamondFlow, {})

    with pytest.raises(RunStateError, match="is running; only a failed run can be retried"):
        retry_run(run.pk)


def test_stale_task_after_retry_discarded(flow_queues):
    run = start_flow(RefusingFlow, {})
    [old_task] = flow_queues.read(RefusingFlow.queue_name(), vt=0, qty=1)
    run_to_end(RefusingFlow, run.pk)
    retry_run(run.pk)
    flow_queues.send(RefusingFlow.queue_name(), old_task.body)  # a late copy of the first task

    worker = step_worker(RefusingFlow)
    worker.run_once()
    worker.run_once()

    assert len(attempts_of(run.pk, "refuse")) == 2, "the stale copy must not start an attempt"


# --- eager execution -------------------------------------------------------------------------


def test_eager_start_runs_every_step_without_tasks(flow_queues):
    run = start_flow(DiamondFlow, {"n": 3}, eager=True)

    assert run.status == RunStatus.COMPLETED
    stored = FlowRun.objects.get(pk=run.pk)
    assert (stored.status, stored.remaining_steps) == (RunStatus.COMPLETED, 0)
    states = steps_of(run.pk)
    assert {state.status for state in states.values()} == {StepStatus.COMPLETED}
    assert set(states["d"].output["outputs"]) == {"b", "c"}
    for name in "abcd":
        assert [attempt.status for attempt in attempts_of(run.pk, name)] == [AttemptStatus.SUCCEEDED]
    assert {state.task_msg_id for state in states.values()} == {None}, "eager steps need no tasks"
    assert flow_queues.metrics(DiamondFlow.queue_name()).queue_length == 0
    assert sorted(effect["step"] for effect in effects(flow_queues, run.pk)) == ["a", "b", "c", "d"]


def test_eager_retry_handed_to_worker(flow_queues):
    run = start_flow(RetryFlow, {"succeed_on": 2}, eager=True)

    assert run.status == RunStatus.RUNNING
    flaky = steps_of(run.pk)["flaky"]
    assert flaky.status == StepStatus.QUEUED
    assert flaky.task_msg_id is not None
    [first] = attempts_of(run.pk, "flaky")
    assert (first.status, first.retry_delay_s) == (AttemptStatus.FAILED, pytest.approx(0.2))
    assert steps_of(run.pk)["after"].status == StepStatus.PENDING

    finished = run_to_end(RetryFlow, run.pk)

    assert finished.status == RunStatus.COMPLETED
    assert [attempt.status for attempt in attempts_of(run.pk, "flaky")] == [AttemptStatus.FAILED, AttemptStatus.SUCCEEDED]
    assert [effect["step"] for effect in effects(flow_queues, run.pk)] == ["flaky", "after"]


def test_eager_final_failure_cancels_rest(flow_queues):
    run = start_flow(RefusingFlow, {}, eager=True)

    assert run.status == RunStatus.FAILED
    stored = FlowRun.objects.get(pk=run.pk)
    assert stored.error == "step 'refuse' failed: input can never work (attempt 1 of 5)"
    assert stored.failed_step == "refuse"
    assert steps_of(run.pk)["refuse"].task_msg_id is None
    assert flow_queues.metrics(RefusingFlow.queue_name()).queue_length == 0


def test_eager_timeout_retried_by_worker(flow_queues):
    run = start_flow(TimeoutFlow, {"sleep": 0.4, "slow_attempts": [1]}, eager=True)

    assert attempts_of(run.pk, "slow")[0].status == AttemptStatus.TIMED_OUT
    finished = run_to_end(TimeoutFlow, run.pk)

    assert finished.status == RunStatus.COMPLETED
    assert [effect["attempt"] for effect in effects(flow_queues, run.pk)] == [2]


def test_eager_run_rolls_back_with_caller(flow_queues):
    from django.db import transaction

    run_id = uuid.uuid4()
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            start_flow(DiamondFlow, {}, run_id=run_id, eager=True)
            raise RuntimeError("the caller's transaction fails after the run")

    assert not FlowRun.objects.filter(pk=run_id).exists()
    assert effects(flow_queues, run_id) == []


# --- writes and sends handed to the step's completion ---------------------------------------


@pytest.fixture
def hand_over_table():
    """Create the table that HandOverFlow writes to, for this test's connection only."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {HAND_OVER_TABLE} (run_id uuid, step text, attempt integer)")
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {HAND_OVER_TABLE}")


def hand_over_rows(run_id) -> list[tuple[str, int]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT step, attempt FROM {HAND_OVER_TABLE} WHERE run_id = %s ORDER BY step, attempt", [run_id])
        return cursor.fetchall()


def test_eager_hand_over_in_final_statement(flow_queues, hand_over_table):
    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        run = start_flow(HandOverFlow, {"succeed_on": 1}, eager=True)

    assert run.status == RunStatus.COMPLETED
    assert len(statements) == 2, f"only the run's insert and its final statement, no savepoint: {statements}"
    assert [(effect["step"], effect["attempt"]) for effect in effects(flow_queues, run.pk)] == [("first", 1), ("second", 1)]
    assert hand_over_rows(run.pk) == [("first", 1), ("second", 1)]
    assert steps_of(run.pk)["second"].output == {"attempt": 1}


def test_eager_failed_attempt_drops_hand_over(flow_queues, hand_over_table):
    run = start_flow(HandOverFlow, {"succeed_on": 2}, eager=True)

    assert run.status == RunStatus.RUNNING
    assert effects(flow_queues, run.pk) == [], "the failed attempt's send must be dropped"
    assert hand_over_rows(run.pk) == []

    finished = run_to_end(HandOverFlow, run.pk)

    assert finished.status == RunStatus.COMPLETED
    assert [(effect["step"], effect["attempt"]) for effect in effects(flow_queues, run.pk)] == [("first", 2), ("second", 1)]
    assert hand_over_rows(run.pk) == [("first", 2), ("second", 1)]


def test_eager_failed_hand_over_rolls_back_run(flow_queues):
    run_id = uuid.uuid4()

    # Without the hand_over_table fixture the handed-over INSERT fails in the final statement.
    with pytest.raises(ProgrammingError, match=HAND_OVER_TABLE):
        with transaction.atomic():
            start_flow(HandOverFlow, {"succeed_on": 1}, run_id=run_id, eager=True)

    assert not FlowRun.objects.filter(pk=run_id).exists()
    assert effects(flow_queues, run_id) == []


def test_hand_over_rejects_select():
    with pytest.raises(ValueError, match="needs one INSERT, UPDATE or DELETE"):
        execute_with_completion("SELECT 1")


# --- the message that requested a run, archived with its start --------------------------------

REQUESTS_QUEUE = "test_flow_requests"


@pytest.fixture
def request_message(flow_queues) -> tuple[str, int]:
    """A message on a scratch queue, read as a consumer reads one before it starts a run."""
    flow_queues.create(REQUESTS_QUEUE, notify=False)
    flow_queues.purge(REQUESTS_QUEUE)
    flow_queues.send(REQUESTS_QUEUE, {"n": 1})
    [message] = flow_queues.read(REQUESTS_QUEUE, vt=30, qty=1)
    return REQUESTS_QUEUE, message.msg_id


def is_archived(message: tuple[str, int]) -> bool:
    queue, msg_id = message
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM pgmq.a_{queue} WHERE msg_id = %s", [msg_id])
        return cursor.fetchone()[0] == 1


@pytest.mark.parametrize("eager", [True, False])
def test_start_archives_message(flow_queues, request_message, eager):
    start_flow(DiamondFlow, {"n": 1}, eager=eager, archive_message=request_message)

    assert flow_queues.metrics(REQUESTS_QUEUE).queue_length == 0
    assert is_archived(request_message)


def test_existing_run_archives_message(flow_queues, request_message):
    run = start_flow(DiamondFlow, {"n": 1})

    again = start_flow(DiamondFlow, {"n": 1}, run_id=run.pk, eager=True, archive_message=request_message)

    assert again.pk == run.pk
    assert is_archived(request_message)


def test_run_conflict_keeps_message(flow_queues, request_message):
    run = start_flow(DiamondFlow, {})

    with pytest.raises(RunConflict):
        start_flow(RetryFlow, {}, run_id=run.pk, eager=True, archive_message=request_message)

    assert flow_queues.metrics(REQUESTS_QUEUE).queue_length == 1
    assert not is_archived(request_message)


def test_eager_archive_rolls_back_with_caller(flow_queues, request_message):
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            start_flow(DiamondFlow, {}, eager=True, archive_message=request_message)
            raise RuntimeError("the caller's transaction fails after the run")

    assert flow_queues.metrics(REQUESTS_QUEUE).queue_length == 1
    assert not is_archived(request_message)
