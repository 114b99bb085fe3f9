"""The ``observer_hitl_requests`` consumer: store each agent request once, as a pending ``Approval``."""
import logging
from datetime import datetime

from django.utils import timezone

from singularity.hitl.contracts import HITL_REQUEST, RequestType
from singularity.messaging.contracts import InvalidMessage
from singularity.messaging.queues import OBSERVER_HITL_REQUESTS
from singularity.messaging.registry import consumer
from singularity.messaging.runtime import DeadLetter, Delivery

from .expiry import expires_at_for
from .models import Approval, ApprovalHistory, ApprovalStatus

logger = logging.getLogger(__name__)


@consumer(OBSERVER_HITL_REQUESTS, name="observer_hitl_requests", contract=HITL_REQUEST)
def ingest_request(delivery: Delivery) -> DeadLetter | None:
    """Create the approval for a request; a request_id seen before changes nothing.

    A question without a question text is an invalid body, and a ``reply_to`` queue that does not
    exist is dead-lettered, because no decision on it could ever reach the agent.
    """
    from singularity.models import Queue

    body = delivery.body
    if body["type"] == RequestType.QUESTION:
        question = body["payload"].get("question")
        if not isinstance(question, str) or not question.strip():
            raise InvalidMessage("a question needs payload.question as a non-empty string")
    if not Queue.objects.exists(body["reply_to"]):
        return DeadLetter(
            "unknown_reply_queue",
            f"reply_to queue {body['reply_to']!r} does not exist; create it or use observer_decisions",
        )

    now = timezone.now()
    if body.get("expires_at"):
        expires_at = datetime.fromisoformat(body["expires_at"])
    else:
        expires_at = expires_at_for(body["agent_id"], body["task_type"], now)

    approval, created = Approval.objects.get_or_create(
        request_id=body["request_id"],
        defaults={
            "type": body["type"],
            "agent_id": body["agent_id"],
            "task_type": body["task_type"],
            "summary": body.get("summary") or "",
            "payload": body["payload"],
            "metadata": body.get("metadata") or {},
            "reply_to": body["reply_to"],
            "expires_at": expires_at,
        },
    )
    if not created:
        logger.info("observer.request_duplicate_ignored", extra={**delivery.log_ids, "approval_id": approval.pk})
        return None

    ApprovalHistory.objects.create(
        approval=approval,
        from_status="",
        to_status=ApprovalStatus.PENDING,
        reason=f"Requested by agent {approval.agent_id}.",
    )
    logger.info(
        "observer.request_stored",
        extra={**delivery.log_ids, "approval_id": approval.pk, "type": approval.type, "task_type": approval.task_type},
    )
    return None
