"""The ``ai_requests`` consumer: validate, route, call the provider, publish to ``ai_results``.

The provider call runs inside the runtime's transaction, so the published result and the
acknowledgement of the request commit together: a crash between them redelivers the request and
the results consumer ignores the second result.
"""
import logging
import time
from datetime import datetime, timezone

from singularity.llm.contracts import AI_REQUEST, AI_REQUEST_ENVELOPE, ErrorType, ResultStatus
from singularity.messaging.contracts import InvalidMessage
from singularity.messaging.queues import AI_REQUESTS, AI_RESULTS
from singularity.messaging.registry import consumer
from singularity.messaging.runtime import DeadLetter, Delivery, RetryLater

from .pricing import cost_usd
from .providers import LlmCall, ProviderError, get_provider
from .providers import UnknownProvider
from .routing import NoRoute, resolve_route

logger = logging.getLogger(__name__)


@consumer(AI_REQUESTS, name="ai_requests", contract=AI_REQUEST_ENVELOPE)
def handle_request(delivery: Delivery) -> DeadLetter | None:
    body = delivery.body
    request_id = body["request_id"]
    try:
        AI_REQUEST.validate(body)
    except InvalidMessage as exc:
        # The agent gets an error result at once, and the bad message is kept for an operator.
        publish_error(request_id, ErrorType.INVALID_REQUEST, f"Invalid request: {exc}")
        return DeadLetter("invalid_body", str(exc))

    try:
        route = resolve_route(body["task_type"], body["complexity"], model_override=body.get("model"))
        provider = get_provider(route.provider)
    except (NoRoute, UnknownProvider) as exc:
        logger.error("nexus.no_route", extra={**delivery.log_ids, "error": str(exc)})
        publish_error(request_id, ErrorType.NO_ROUTE, str(exc))
        return None

    call = LlmCall(
        model=route.model,
        task_type=body["task_type"],
        messages=body.get("messages"),
        input=body.get("input"),
        max_tokens=body.get("max_tokens"),
        temperature=body.get("temperature"),
        tools=body.get("tools"),
        previous_response_id=body.get("previous_response_id"),
    )
    started = time.perf_counter()
    try:
        completion = provider.complete(call)
    except ProviderError as exc:
        latency_ms = (time.perf_counter() - started) * 1000
        if exc.transient and not delivery.is_last_attempt:
            raise RetryLater(str(exc), delay=exc.retry_after) from exc
        logger.error(
            "nexus.provider_failed",
            extra={**delivery.log_ids, "provider": provider.name, "model": route.model, "attempt": delivery.attempt, "error": str(exc)},
        )
        publish_error(
            request_id,
            exc.error_type,
            f"{exc} (attempt {delivery.attempt} of {delivery.max_attempts})",
            model=route.model,
            provider=provider.name,
            latency_ms=latency_ms,
        )
        return None

    latency_ms = (time.perf_counter() - started) * 1000
    cost = cost_usd(completion.model, completion.input_tokens, completion.output_tokens)
    publish_result(
        {
            "request_id": request_id,
            "status": ResultStatus.OK.value,
            "response": completion.text,
            "model": completion.model,
            "provider": provider.name,
            "usage": {
                "input_tokens": completion.input_tokens,
                "output_tokens": completion.output_tokens,
                "total_tokens": completion.total_tokens,
            },
            "cost_usd": float(cost) if cost is not None else None,
            "latency_ms": round(latency_ms, 3),
            "response_id": completion.response_id,
            "route": route.source,
        }
    )
    logger.info(
        "nexus.request_completed",
        extra={**delivery.log_ids, "provider": provider.name, "model": completion.model, "latency_ms": round(latency_ms, 1)},
    )
    return None


def publish_error(request_id: str, error_type: str, message: str, **fields) -> int:
    return publish_result(
        {
            "request_id": request_id,
            "status": ResultStatus.ERROR.value,
            "response": None,
            "usage": None,
            "cost_usd": None,
            "error": {"type": str(error_type), "message": message},
            **fields,
        }
    )


def publish_result(body: dict) -> int:
    from singularity.models import Queue

    body.setdefault("completed_at", datetime.now(timezone.utc).isoformat())
    return Queue.objects.send(AI_RESULTS, body)
