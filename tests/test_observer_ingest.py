"""The observer_hitl_requests consumer: one approval per request_id, invalid bodies dead-lettered."""
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from observer.models import Approval
from singularity.messaging.notifications import get_hub
from singularity.messaging.queues import DEAD_LETTERS, OBSERVER_HITL_REQUESTS
from singularity.messaging.registry import registered_consumers
from singularity.messaging.runtime import ConsumerWorker

pytestmark = pytest.mark.django_db


def request_body(**fields) -> dict:
    return {
        "request_id": str(uuid.uuid4()),
        "type": "approval",
        "agent_id": "deploy-bot",
        "task_type": "deploy",
        "payload": {"release": 42},
        "summary": "Deploy release 42",
        "metadata": {"ticket": "OPS-7"},
        "expires_at": None,
        "reply_to": "observer_decisions",
        **fields,
    }


def ingest(queues, *bodies) -> None:
    for body in bodies:
        queues.send(OBSERVER_HITL_REQUESTS, body)
    ConsumerWorker(registered_consumers()["observer_hitl_requests"], get_hub()).run_once()


def dead_letters(queues) -> list[dict]:
    return [message.body for message in queues.read(DEAD_LETTERS, vt=0, qty=100)]


def test_request_stored_pending(clean_queues):
    expires_at = datetime.now(timezone.utc) + timedelta(minutes=5)
    body = request_body(expires_at=expires_at.isoformat())

    ingest(clean_queues, body)

    approval = Approval.objects.get(request_id=body["request_id"])
    assert approval.status == "pending"
    assert (approval.type, approval.agent_id, approval.task_type) == ("approval", "deploy-bot", "deploy")
    assert approval.payload == {"release": 42}
    assert approval.metadata == {"ticket": "OPS-7"}
    assert approval.summary == "Deploy release 42"
    assert approval.reply_to == "observer_decisions"
    assert approval.expires_at == expires_at
    entry = approval.history.get()
    assert (entry.from_status, entry.to_status, entry.actor) == ("", "pending", None)
    assert clean_queues.metrics(OBSERVER_HITL_REQUESTS).queue_length == 0


def test_same_request_twice(clean_queues):
    body = request_body()

    ingest(clean_queues, body, {**body, "summary": "changed"})

    assert Approval.objects.filter(request_id=body["request_id"]).count() == 1
    assert Approval.objects.get(request_id=body["request_id"]).summary == "Deploy release 42"
    assert clean_queues.metrics(OBSERVER_HITL_REQUESTS).queue_length == 0
    assert dead_letters(clean_queues) == []


def test_question_stored(clean_queues):
    body = request_body(type="question", task_type="question", payload={"question": "Which region?", "context": None})

    ingest(clean_queues, body)

    approval = Approval.objects.get(request_id=body["request_id"])
    assert approval.is_question
    assert approval.question == "Which region?"


@pytest.mark.parametrize(
    "body, fault",
    [
        (["not", "an", "object"], "JSON object"),
        ({"type": "approval"}, "request_id"),
        (request_body(request_id="42"), "request_id"),
        (request_body(type="order"), "type"),
        (request_body(agent_id=""), "agent_id"),
        (request_body(agent_id="a" * 201), "agent_id"),
        (request_body(payload="text"), "payload"),
        (request_body(expires_at="tomorrow"), "expires_at"),
        (request_body(expires_at="2030-01-01T12:00:00"), "expires_at"),
        (request_body(reply_to="Bad-Name"), "reply_to"),
        (request_body(type="question", payload={"context": "no question"}), "payload.question"),
    ],
)
def test_invalid_body_dead_lettered(clean_queues, body, fault):
    ingest(clean_queues, body)

    [letter] = dead_letters(clean_queues)
    assert letter["reason"] == "invalid_body"
    assert fault in letter["error"]
    assert letter["body"] == body
    assert Approval.objects.count() == 0


def test_unknown_reply_queue(clean_queues):
    ingest(clean_queues, request_body(reply_to="observer_nobody_listens"))

    [letter] = dead_letters(clean_queues)
    assert letter["reason"] == "unknown_reply_queue"
    assert "observer_nobody_listens" in letter["error"]
    assert Approval.objects.count() == 0


@pytest.mark.parametrize(
    "agent_id, task_type, seconds",
    [
        ("deploy-bot", "deploy", 60),
        ("deploy-bot", "migrate", 120),
        ("other-bot", "question", 3600),
        ("other-bot", "other", 86400),
    ],
)
def test_default_lifetime(clean_queues, settings, agent_id, task_type, seconds):
    settings.OBSERVER_DEFAULT_LIFETIME_SECONDS = 86400
    settings.OBSERVER_LIFETIMES = {"deploy-bot:deploy": 60, "deploy-bot:*": 120, "*:question": 3600}
    body = request_body(agent_id=agent_id, task_type=task_type)
    before = datetime.now(timezone.utc)

    ingest(clean_queues, body)

    expires_at = Approval.objects.get(request_id=body["request_id"]).expires_at
    assert before + timedelta(seconds=seconds - 5) <= expires_at <= before + timedelta(seconds=seconds + 5)


def test_zero_lifetime_never_expires(clean_queues, settings):
    settings.OBSERVER_DEFAULT_LIFETIME_SECONDS = 0
    settings.OBSERVER_LIFETIMES = {}
    body = request_body()

    ingest(clean_queues, body)

    assert Approval.objects.get(request_id=body["request_id"]).expires_at is None
