"""The observer_hitl_withdrawals consumer: an agent withdraws a request it no longer needs."""
import uuid
from datetime import datetime, timezone

import pytest

from observer import decisions
from observer.models import Approval
from singularity.messaging.notifications import get_hub
from singularity.messaging.queues import DEAD_LETTERS, OBSERVER_DECISIONS, OBSERVER_HITL_WITHDRAWALS
from singularity.messaging.registry import registered_consumers
from singularity.messaging.runtime import ConsumerWorker, Outcome

pytestmark = pytest.mark.django_db


def withdrawal(request_id, reason: str = "the run was cancelled") -> dict:
    return {"request_id": str(request_id), "reason": reason, "withdrawn_at": datetime.now(timezone.utc).isoformat()}


def handle_one(queues, body) -> str:
    queues.send(OBSERVER_HITL_WITHDRAWALS, body)
    worker = ConsumerWorker(registered_consumers()["observer_hitl_withdrawals"], get_hub())
    [message] = queues.read(OBSERVER_HITL_WITHDRAWALS, vt=30, qty=1)
    return worker.handle(message)


def test_withdrawal_cancels_pending_approval(clean_queues, make_approval):
    approval = make_approval()

    assert handle_one(clean_queues, withdrawal(approval.request_id)) == Outcome.ARCHIVED

    current = Approval.objects.get(pk=approval.pk)
    assert current.status == "cancelled"
    assert current.decided_by is None
    assert current.decision_reason == "Withdrawn by the agent: the run was cancelled"
    [reply] = [message.body for message in clean_queues.read(OBSERVER_DECISIONS, vt=0, qty=10)]
    assert (reply["request_id"], reply["decision"]) == (str(approval.request_id), "cancelled")
    assert current.history.order_by("pk").last().to_status == "cancelled"


def test_withdrawal_leaves_decided_approval(clean_queues, make_approval, approver):
    approval = make_approval()
    decisions.approve(approval.pk, approver)
    clean_queues.purge(OBSERVER_DECISIONS)

    assert handle_one(clean_queues, withdrawal(approval.request_id)) == Outcome.ARCHIVED

    assert Approval.objects.get(pk=approval.pk).status == "approved"
    assert clean_queues.read(OBSERVER_DECISIONS, vt=0, qty=10) == []


def test_withdrawal_before_request_retried(clean_queues):
    assert handle_one(clean_queues, withdrawal(uuid.uuid4())) == Outcome.RETRYING


def test_bad_withdrawal_dead_lettered(clean_queues):
    assert handle_one(clean_queues, {"request_id": "nope", "reason": "x"}) == Outcome.DEAD_LETTERED

    [letter] = [message.body for message in clean_queues.read(DEAD_LETTERS, vt=0, qty=10)]
    assert letter["reason"] == "invalid_body"
    assert "field 'request_id' must be a UUID" in letter["error"]
    assert "missing required field 'withdrawn_at'" in letter["error"]
