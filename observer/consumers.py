"""Observer's consumers: store each agent request once as a pending ``Approval``, and apply withdrawals."""
import logging
from datetime import datetime

from django.utils import timezone

from singularity.hitl.contracts import HITL_REQUEST, HITL_WITHDRAWAL, RequestType
from singularity.messaging.contracts import InvalidMessage
from singularity.messaging.queues import OBSERVER_HITL_REQUESTS, OBSERVER_HITL_WITHDRAWALS
from singularity.messaging.registry import consumer
from singularity.messaging.runtime import DeadLetter, Delivery, RetryLater

from . import decisions

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


# The request and its withdrawal travel on two queues, so the withdrawal can arrive first. It is
# retried with the runtime's backoff for about as long as these attempts take (over 8 minutes with
# the default backoff settings) before it is dead-lettered.
WITHDRAWAL_MAX_ATTEMPTS = 10


@consumer(
    OBSERVER_HITL_WITHDRAWALS, name="observer_hitl_withdrawals", contract=HITL_WITHDRAWAL, max_attempts=WITHDRAWAL_MAX_ATTEMPTS
)
def apply_withdrawal(delivery: Delivery) -> None:
    """Cancel the approval of a withdrawn request if it is still pending; a decided one stays as it is."""
    body = delivery.body
    approval = Approval.objects.filter(request_id=body["request_id"]).first()
    if approval is None:
        # Retried, and dead-lettered after the last attempt if the request never arrives.
        raise RetryLater(
            f"no approval found for request_id {body['request_id']}; retried until its request arrives on "
            "observer_hitl_requests"
        )
    closed = decisions.withdraw(approval.pk, body["reason"])
    if closed is None:
        logger.info(
            "observer.withdrawal_ignored",
            extra={**delivery.log_ids, "approval_id": approval.pk, "status": approval.status},
        )
    return None
