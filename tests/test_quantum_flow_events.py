"""Wait-for-event steps against PostgreSQL: delivery before and after the wait, timeout, cancel, restart."""
import threading
import uuid

import pytest
from django.db import connection, transaction

from singularity.messaging.notifications import get_hub
from singularity.messaging.queues import DEAD_LETTERS
from singularity.messaging.registry import registered_consumers
from singularity.messaging.runtime import ConsumerWorker
from singularity.quantum_flow import InvalidEvent, Wait, cancel_run, deliver_event, send_event, start_flow
from singularity.quantum_flow.events import FLOW_EVENTS_QUEUE
from singularity.quantum_flow.models import FlowEvent, FlowRun, RunStatus, StepStatus
from tests.conftest import wait_for
from tests.quantum_flow_flows import TEST_EVENT, BadWaitFlow, WaitingFlow
from tests.test_quantum_flow_engine import effects, run_to_end, step_worker, steps_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def event_queues(flow_queues):
    for name in (FLOW_EVENTS_QUEUE, DEAD_LETTERS):
        flow_queues.purge(name)
    return flow_queues


def start_waiting(key: str | None = None, **input) -> tuple[FlowRun, str]:
    """Start a WaitingFlow run and handle its first task, so its ``ask`` step waits; return the run and key."""
    key = key or f"key-{uuid.uuid4()}"
    run = start_flow(WaitingFlow, {"key": key, **input})
    assert step_worker(WaitingFlow).run_once()
    return run, key


def deliver(event: str, key: str, payload=None) -> int:
    with transaction.atomic():
        return deliver_event(event, key, payload)


def test_event_completes_waiting_step(event_queues):
    run, key = start_waiting()
    ask = steps_of(run.pk)["ask"]
    assert (ask.status, ask.wait_event, ask.wait_key, ask.wait_deadline) == (StepStatus.WAITING, TEST_EVENT, key, None)
    assert event_queues.read(WaitingFlow.queue_name(), vt=0, qty=10) == []  # no task while it waits

    assert deliver(TEST_EVENT, key, {"answer": 42}) == 1

    steps = steps_of(run.pk)
    assert steps["ask"].status == StepStatus.COMPLETED
    assert steps["ask"].output == {"answer": 42}
    assert steps["after"].status == StepStatus.QUEUED
    finished = run_to_end(WaitingFlow, run.pk)
    assert finished.status == RunStatus.COMPLETED
    assert steps_of(run.pk)["after"].output["outputs"] == {"ask": {"answer": 42}}


def test_other_event_changes_nothing(event_queues):
    run, key = start_waiting()

    assert deliver(TEST_EVENT, key + "-other", {"answer": 1}) == 0
    assert deliver("test.other", key, {"answer": 1}) == 0

    assert steps_of(run.pk)["ask"].status == StepStatus.WAITING


def test_early_event_is_kept(event_queues):
    key = f"early-{uuid.uuid4()}"
    assert deliver(TEST_EVENT, key, {"answer": "early"}) == 0
    assert FlowEvent.objects.filter(event=TEST_EVENT, key=key).exists()

    run = start_flow(WaitingFlow, {"key": key})
    finished = run_to_end(WaitingFlow, run.pk)

    assert finished.status == RunStatus.COMPLETED
    assert steps_of(run.pk)["ask"].output == {"answer": "early"}


def test_second_delivery_keeps_first_payload(event_queues):
    run, key = start_waiting()
    deliver(TEST_EVENT, key, {"n": 1})
    deliver(TEST_EVENT, key, {"n": 2})

    assert steps_of(run.pk)["ask"].output == {"n": 1}
    assert run_to_end(WaitingFlow, run.pk).status == RunStatus.COMPLETED
    assert len([body for body in effects(event_queues, run.pk) if body["step"] == "after"]) == 1


def test_racing_delivery_seen_by_wait(event_queues):
    """A delivery that commits while a step starts waiting is seen by it: the advisory lock orders them."""
    key = f"race-{uuid.uuid4()}"
    run = start_flow(WaitingFlow, {"key": key})
    delivered = threading.Event()
    release = threading.Event()

    def deliver_and_hold():
        try:
            with transaction.atomic():
                deliver_event(TEST_EVENT, key, {"raced": True})
                delivered.set()
                release.wait(10)
        finally:
            connection.close()

    sender = threading.Thread(target=deliver_and_hold)
    sender.start()
    assert delivered.wait(10)
    # The step worker now blocks on the lock until the delivery commits, then finds the kept event.
    threading.Timer(0.3, release.set).start()
    assert step_worker(WaitingFlow).run_once()
    sender.join(10)

    assert steps_of(run.pk)["ask"].output == {"raced": True}
    assert run_to_end(WaitingFlow, run.pk).status == RunStatus.COMPLETED


def test_wait_times_out_and_fails_run(event_queues):
    run, key = start_waiting(timeout=0.3)

    finished = run_to_end(WaitingFlow, run.pk)

    assert finished.status == RunStatus.FAILED
    assert finished.failed_step == "ask"
    assert f"no {TEST_EVENT!r} event arrived for key {key!r}" in finished.error
    steps = steps_of(run.pk)
    assert (steps["ask"].status, steps["after"].status) == (StepStatus.FAILED, StepStatus.CANCELLED)
    [stopped] = [body for body in effects(event_queues, run.pk) if body["step"] == "on_run_stopped"]
    assert stopped["status"] == RunStatus.FAILED
    # An event after the failure completes nothing and is kept, as for any step that is not waiting.
    assert deliver(TEST_EVENT, key, {"late": True}) == 0


def test_event_in_time_archives_task(event_queues):
    run, key = start_waiting(timeout=60)
    assert steps_of(run.pk)["ask"].wait_deadline is not None

    deliver(TEST_EVENT, key, {"answer": "in time"})

    assert run_to_end(WaitingFlow, run.pk).status == RunStatus.COMPLETED
    assert event_queues.read(WaitingFlow.queue_name(), vt=0, qty=10) == []


def test_cancel_stops_waiting_step(event_queues):
    run, key = start_waiting(timeout=60)

    cancel_run(run.pk, reason="no longer needed")

    assert steps_of(run.pk)["ask"].status == StepStatus.CANCELLED
    assert deliver(TEST_EVENT, key, {"answer": 1}) == 0
    assert FlowRun.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    [stopped] = [body for body in effects(event_queues, run.pk) if body["step"] == "on_run_stopped"]
    assert (stopped["status"], stopped["error"]) == (RunStatus.CANCELLED, "no longer needed")
    assert event_queues.read(WaitingFlow.queue_name(), vt=0, qty=10) == []


def test_send_event_through_queue(event_queues):
    run, key = start_waiting()
    with transaction.atomic():
        send_event(TEST_EVENT, key, {"via": "queue"})

    assert ConsumerWorker(registered_consumers()[FLOW_EVENTS_QUEUE], get_hub()).run_once()

    assert steps_of(run.pk)["ask"].output == {"via": "queue"}
    assert run_to_end(WaitingFlow, run.pk).status == RunStatus.COMPLETED


def test_bad_event_message_dead_lettered(event_queues):
    event_queues.send(FLOW_EVENTS_QUEUE, {"event": "Not An Event", "key": "k"})
    event_queues.send(FLOW_EVENTS_QUEUE, {"event": TEST_EVENT, "key": ""})

    worker = ConsumerWorker(registered_consumers()[FLOW_EVENTS_QUEUE], get_hub())
    while worker.run_once():
        pass

    letters = [message.body for message in event_queues.read(DEAD_LETTERS, vt=0, qty=10)]
    assert [letter["reason"] for letter in letters] == ["invalid_body", "invalid_body"]
    assert "Event name 'Not An Event' is invalid" in letters[0]["error"]
    assert "field 'key' is invalid: give a non-empty string of at most 200 characters" in letters[1]["error"]


@pytest.mark.parametrize(
    "event, key, timeout, message",
    [
        ("Bad Name", "k", None, "Event name 'Bad Name' is invalid"),
        ("ok.event", "", None, "Event key '' of event 'ok.event' is invalid"),
        ("ok.event", 7, None, "Event key 7 of event 'ok.event' is invalid"),
        ("ok.event", "k" * 300, None, r"Event key 'kkk[k]*\.\.\. \(300 characters\) of event"),
        ("ok.event", "k", 0, "Wait timeout 0 is invalid"),
        ("ok.event", "k", float("inf"), "Wait timeout inf is invalid"),
    ],
)
def test_bad_wait_named(event, key, timeout, message):
    with pytest.raises(InvalidEvent, match=message):
        Wait(event, key, timeout=timeout)


def test_non_json_payload_rejected(db):
    with pytest.raises(InvalidEvent, match="cannot be stored as JSON"):
        deliver_event(TEST_EVENT, "k", {"value": object()})


@pytest.mark.e2e
def test_waiting_run_survives_worker_restart(event_queues, start_worker):
    env = {"QUANTUM_FLOW_MODULES": "tests.quantum_flow_flows"}
    worker = start_worker(**env)
    key = f"restart-{uuid.uuid4()}"
    run = start_flow(WaitingFlow, {"key": key})
    wait_for(lambda: steps_of(run.pk)["ask"].status == StepStatus.WAITING, timeout=15)
    assert worker.stop() == 0

    with transaction.atomic():
        send_event(TEST_EVENT, key, {"after": "restart"})
    start_worker(**env)

    wait_for(lambda: FlowRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED, timeout=15)
    assert steps_of(run.pk)["after"].output["outputs"] == {"ask": {"after": "restart"}}


def test_eager_run_cannot_wait(event_queues):
    run = start_flow(WaitingFlow, {"key": "eager"}, eager=True)

    assert run.status == RunStatus.FAILED
    stored = FlowRun.objects.get(pk=run.pk)
    assert "an eager run cannot wait: start the flow without eager=True" in stored.error


def test_invalid_wait_fails_without_retry(event_queues):
    run = start_flow(BadWaitFlow, {})

    finished = run_to_end(BadWaitFlow, run.pk)

    assert finished.status == RunStatus.FAILED
    assert "Event name 'Not An Event' is invalid" in finished.error
    assert "(attempt 1 of 5)" in finished.error
