"""The agents' HITL API end to end: request -> observer -> decision -> observer_decisions -> the waiting call.

The tests marked e2e run a real ``run_workers`` process with the two HITL consumers.
"""
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta

import pytest

from observer import decisions
from observer.models import Approval
from singularity.hitl import (
    DecisionTimeout,
    HitlHandle,
    InvalidHitlRequest,
    UnknownHitlRequest,
    ask_question,
    request_approval,
    submit_approval,
    submit_question,
)
from singularity.hitl.models import HitlDecision, HitlRequest
from singularity.messaging.notifications import get_hub
from singularity.messaging.queues import DEAD_LETTERS, OBSERVER_DECISIONS, OBSERVER_HITL_REQUESTS
from singularity.messaging.registry import registered_consumers
from singularity.messaging.runtime import ConsumerWorker
from tests.conftest import BASE_DIR, wait_for

HITL_CONSUMERS = ("--only", "observer_hitl_requests,observer_decisions")
WAIT = 20  # seconds; generous so a slow machine does not fail the test


def pending_approval(request_id: str) -> Approval:
    return wait_for(lambda: Approval.objects.filter(request_id=request_id).first(), timeout=WAIT)


def in_thread(function, **kwargs):
    """Run ``function`` in a thread; return a dict that receives its result or error and the return time."""
    outcome = {}

    def run():
        from django.db import connection

        try:
            outcome["result"] = function(**kwargs)
        except Exception as exc:  # handed to the test, which asserts on it
            outcome["error"] = exc
        outcome["returned_at"] = time.perf_counter()
        connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


@pytest.mark.django_db
def test_submit_writes_request_and_message(clean_queues):
    handle = submit_approval(agent_id="deploy-bot", task_type="deploy", payload={"release": 42}, expires_in=60)

    request = HitlRequest.objects.get(request_id=handle.request_id)
    [message] = clean_queues.read(OBSERVER_HITL_REQUESTS, vt=0, qty=10)
    assert request.status == "pending"
    assert message.body["request_id"] == handle.request_id
    assert message.body["reply_to"] == OBSERVER_DECISIONS
    assert message.body["type"] == "approval"
    assert message.body["expires_at"] is not None
    assert handle.poll() is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "arguments",
    [
        {"agent_id": "", "task_type": "deploy", "payload": {}},
        {"agent_id": "a", "task_type": "deploy", "payload": "not an object"},
        {"agent_id": "a", "task_type": "deploy", "payload": {}, "expires_in": -1},
        {"agent_id": "a", "task_type": "deploy", "payload": {}, "expires_in": timedelta(0)},
    ],
)
def test_invalid_request_rejected(clean_queues, arguments):
    with pytest.raises(InvalidHitlRequest):
        submit_approval(**arguments)

    assert HitlRequest.objects.count() == 0


@pytest.mark.django_db
def test_empty_question_rejected(clean_queues):
    with pytest.raises(InvalidHitlRequest, match="question"):
        submit_question(agent_id="a", question="  ")


@pytest.mark.django_db
def test_unknown_request_id():
    with pytest.raises(UnknownHitlRequest):
        HitlHandle(str(uuid.uuid4())).poll()
    with pytest.raises(UnknownHitlRequest):
        HitlHandle("not-a-uuid").poll()


def test_exported_from_singularity():
    import singularity

    assert singularity.request_approval is request_approval
    assert singularity.ask_question is ask_question


@pytest.mark.django_db
def test_decision_stored_once(clean_queues, approver):
    """The decisions consumer in this process: a redelivered decision changes nothing."""
    handle = submit_approval(agent_id="deploy-bot", task_type="deploy", payload={})
    ConsumerWorker(registered_consumers()["observer_hitl_requests"], get_hub()).run_once()
    approval = Approval.objects.get(request_id=handle.request_id)
    decisions.approve(approval.pk, approver)
    [reply] = clean_queues.read(OBSERVER_DECISIONS, vt=0, qty=10)
    clean_queues.send(OBSERVER_DECISIONS, reply.body)

    ConsumerWorker(registered_consumers()["observer_decisions"], get_hub()).run_once()

    assert HitlDecision.objects.filter(request_id=handle.request_id).count() == 1
    assert clean_queues.metrics(OBSERVER_DECISIONS).queue_length == 0
    decision = handle.poll()
    assert (decision.status, decision.decided_by, decision.approved) == ("approved", "alice", True)


@pytest.mark.django_db
def test_decision_for_unknown_request(clean_queues):
    body = {"request_id": str(uuid.uuid4()), "decision": "approved", "decided_at": "2030-01-01T00:00:00+00:00"}
    clean_queues.send(OBSERVER_DECISIONS, body)

    ConsumerWorker(registered_consumers()["observer_decisions"], get_hub()).run_once()

    [letter] = [message.body for message in clean_queues.read(DEAD_LETTERS, vt=0, qty=10)]
    assert letter["reason"] == "unknown_request"


@pytest.mark.django_db(transaction=True)
@pytest.mark.e2e
def test_blocking_approval_returns(clean_queues, start_worker, approver):
    start_worker(*HITL_CONSUMERS)
    call = in_thread(
        request_approval, agent_id="deploy-bot", task_type="deploy", payload={"release": 42}, timeout=WAIT
    )

    approval = wait_for(lambda: Approval.objects.filter(agent_id="deploy-bot").first(), timeout=WAIT)
    decisions.approve(approval.pk, approver, reason="ship it")
    call["thread"].join(WAIT)

    decision = call["result"]
    assert decision.status == "approved"
    assert decision.decided_by == "alice"
    assert decision.reason == "ship it"
    assert decision.request_id == str(approval.request_id)


@pytest.mark.django_db(transaction=True)
@pytest.mark.e2e
def test_question_answered_via_handle(clean_queues, start_worker, approver):
    start_worker(*HITL_CONSUMERS)
    handle = submit_question(agent_id="writer", question="Which region?", context={"options": ["eu", "us"]})

    approval = pending_approval(handle.request_id)
    assert handle.poll() is None
    decisions.answer(approval.pk, approver, "eu")
    decision = handle.wait(WAIT)

    assert (decision.status, decision.answer, decision.decided_by) == ("answered", "eu", "alice")
    assert approval.payload == {"question": "Which region?", "context": {"options": ["eu", "us"]}}


@pytest.mark.django_db(transaction=True)
@pytest.mark.e2e
def test_timeout_then_wait_again(clean_queues, start_worker, approver):
    start_worker(*HITL_CONSUMERS)

    with pytest.raises(DecisionTimeout) as caught:
        request_approval(agent_id="deploy-bot", task_type="deploy", payload={}, timeout=0.3)

    request_id = caught.value.request_id
    assert request_id in str(caught.value)
    decisions.reject(pending_approval(request_id).pk, approver, reason="not now")
    decision = caught.value.handle.wait(WAIT)
    assert (decision.status, decision.reason) == ("rejected", "not now")


@pytest.mark.django_db(transaction=True)
@pytest.mark.e2e
def test_expired_reaches_agent(clean_queues, start_worker):
    start_worker(*HITL_CONSUMERS)
    handle = submit_approval(agent_id="deploy-bot", task_type="deploy", payload={}, expires_in=0.5)
    pending_approval(handle.request_id)
    time.sleep(0.6)

    assert decisions.expire_due() == 1
    decision = handle.wait(WAIT)

    assert decision.status == "expired"
    assert decision.decided_by == ""


@pytest.mark.django_db(transaction=True)
@pytest.mark.e2e
def test_wait_from_other_process(clean_queues, start_worker, approver, test_db_url):
    start_worker(*HITL_CONSUMERS)
    handle = submit_approval(agent_id="deploy-bot", task_type="deploy", payload={})
    script = (
        "from singularity.hitl import HitlHandle; "
        f"d = HitlHandle({handle.request_id!r}).wait({WAIT}); print('DECISION', d.status, d.decided_by)"
    )
    other = subprocess.Popen(
        [sys.executable, str(BASE_DIR / "manage.py"), "shell", "-c", script],
        cwd=BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "singularity.settings", "DATABASE_URL": test_db_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        approval = pending_approval(handle.request_id)
        time.sleep(1)  # let the other process start waiting; it must also cope with a decision made earlier
        decisions.approve(approval.pk, approver)
        output, _ = other.communicate(timeout=60)
    finally:
        if other.poll() is None:
            other.kill()

    assert "DECISION approved alice" in output
