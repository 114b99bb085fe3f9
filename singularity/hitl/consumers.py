"""The ``observer_decisions`` consumer: store exactly one decision per request and wake its waiter."""
import logging
from datetime import datetime

from django.utils import timezone

from singularity.messaging.queues import OBSERVER_DECISIONS
from singularity.messaging.registry import consumer
from singularity.messaging.runtime import DeadLetter, Delivery

from .contracts import HITL_DECISION

logger = logging.getLogger(__name__)


@consumer(OBSERVER_DECISIONS, name="observer_decisions", contract=HITL_DECISION)
def store_decision(delivery: Delivery) -> DeadLetter | None:
    """Store the decision once; a redelivered decision changes nothing.

    The conditional update of the pending ``HitlRequest`` decides: only the first decision moves it
    to ``decided``, so only that one is stored. A trigger on the decision table sends the
    notification that wakes ``await_decision``.
    """
    from .models import HitlDecision, HitlRequest

    body = delivery.body
    request_id = body["request_id"]
    claimed = HitlRequest.objects.filter(request_id=request_id, status=HitlRequest.Status.PENDING).update(
        status=HitlRequest.Status.DECIDED, updated_at=timezone.now()
    )
    if not claimed:
        if not HitlRequest.objects.filter(request_id=request_id).exists():
            return DeadLetter("unknown_request", f"no HitlRequest has request_id {request_id}")
        logger.info("hitl.decision_duplicate_ignored", extra=delivery.log_ids)
        return None

    HitlDecision.objects.create(
        request_id=request_id,
        decision=body["decision"],
        decided_by=body.get("decided_by") or "",
        reason=body.get("reason") or "",
        answer=body.get("answer") or "",
        decided_at=datetime.fromisoformat(body["decided_at"]),
        raw=body,
    )
    logger.info("hitl.decision_stored", extra={**delivery.log_ids, "decision": body["decision"]})
    return None
