"""The ``ai_results`` consumer: store exactly one ``JobResult`` per request and wake its waiter."""
import logging
from decimal import Decimal

from django.utils import timezone

from singularity.messaging.queues import AI_RESULTS
from singularity.messaging.registry import consumer
from singularity.messaging.runtime import DeadLetter, Delivery

from .contracts import AI_RESULT, ResultStatus

logger = logging.getLogger(__name__)


@consumer(AI_RESULTS, name="ai_results", contract=AI_RESULT)
def store_result(delivery: Delivery) -> DeadLetter | None:
    """Store the result once; a redelivered result message changes nothing.

    The conditional update of the pending request decides: only the first result moves it out of
    ``pending``, so only that one is stored. A trigger on the result table sends the notification
    that wakes ``await_responses_result``.
    """
    from singularity.models import JobResult, LlmRequest

    body = delivery.body
    request_id = body["request_id"]
    ok = body["status"] == ResultStatus.OK
    claimed = LlmRequest.objects.filter(request_id=request_id, status=LlmRequest.Status.PENDING).update(
        status=LlmRequest.Status.COMPLETED if ok else LlmRequest.Status.FAILED, updated_at=timezone.now()
    )
    if not claimed:
        if not LlmRequest.objects.filter(request_id=request_id).exists():
            return DeadLetter("unknown_request", f"no LlmRequest has request_id {request_id}")
        logger.info("llm.result_duplicate_ignored", extra=delivery.log_ids)
        return None

    usage = body.get("usage") or {}
    error = body.get("error") or {}
    JobResult.objects.create(
        request_id=request_id,
        status=body["status"],
        response=body.get("response") or "",
        model=body.get("model") or "",
        provider=body.get("provider") or "",
        input_tokens=usage.get("input_tokens"),
        output_tokens=usage.get("output_tokens"),
        total_tokens=usage.get("total_tokens"),
        cost_usd=Decimal(str(body["cost_usd"])) if body.get("cost_usd") is not None else None,
        latency_ms=body.get("latency_ms"),
        error_type=str(error.get("type") or ""),
        error_message=str(error.get("message") or ""),
        raw=body,
    )
    logger.info("llm.result_stored", extra={**delivery.log_ids, "status": body["status"]})
    return None
