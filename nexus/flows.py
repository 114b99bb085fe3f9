"""Nexus's handling of one LLM request as the flow validate -> route_llm -> publish_result -> track_metrics.

The ``ai_requests`` consumer starts one run per request with the request_id as the run id and
executes it eagerly in its own transaction, so the result and the acknowledgement of the request
commit together. A transient provider failure leaves ``route_llm`` on the flow's queue, where the
step worker retries it after the backoff or the provider's Retry-After.
"""
import json
import logging
import time

from django.conf import settings

from singularity.llm.contracts import AI_REQUEST, ErrorType, ResultStatus
from singularity.messaging.contracts import InvalidMessage
from singularity.messaging.queues import AI_RESULTS
from singularity.messaging.runtime import RetryLater
from singularity.quantum_flow import Flow, Step, StepContext
from singularity.quantum_flow.eager import execute_with_completion

from .models import UsageRecord
from .pricing import cost_usd
from .providers import LlmCall, ProviderError, UnknownProvider, get_provider
from .publishing import publish_result
from .routing import NoRoute, Target, resolve_route

logger = logging.getLogger(__name__)

_USAGE_COLUMNS = (
    "request_id, agent_id, task_type, complexity, status, error_type, provider, model, fallback_used, "
    "input_tokens, output_tokens, total_tokens, cost_usd, latency_ms"
)
# The record arrives as one JSON object, which jsonb_populate_record converts to the table's column
# types: one parameter costs less to send than fourteen. ON CONFLICT: a run retried from
# track_metrics records nothing twice, because request_id is unique.
_USAGE_INSERT_SQL = (
    f"INSERT INTO {UsageRecord._meta.db_table} ({_USAGE_COLUMNS}, created_at) "
    f"SELECT {_USAGE_COLUMNS}, clock_timestamp() "
    f"FROM jsonb_populate_record(NULL::{UsageRecord._meta.db_table}, %s::jsonb) "
    "ON CONFLICT (request_id) DO NOTHING"
)


def validate(context: StepContext) -> dict:
    """Check the request against the full ``ai_requests`` contract; an invalid one gets an error result, no retry."""
    try:
        AI_REQUEST.validate(context.input)
    except InvalidMessage as exc:
        return {"valid": False, "error": str(exc)}
    return {"valid": True}


def route_llm(context: StepContext) -> dict:
    """Call the routed model, then its fallbacks; return the result fields for ``ai_results``.

    A transient failure before the last attempt raises ``RetryLater`` (after the provider's
    Retry-After when it sent one), and the next attempt starts again from the routed model. A
    permanent failure, or a transient one on the last attempt, moves on to the next fallback at
    once. When every target has failed, the error result names the last failure.
    """
    body = context.input
    validation = context.outputs["validate"]
    if not validation["valid"]:
        return _error(ErrorType.INVALID_REQUEST, f"Invalid request: {validation['error']}")
    try:
        route = resolve_route(body["task_type"], body["complexity"], model_override=body.get("model"))
    except NoRoute as exc:
        logger.error("nexus.no_route", extra={"request_id": context.run_id, "error": str(exc)})
        return _error(ErrorType.NO_ROUTE, str(exc))

    targets = route.targets
    failures: list[dict] = []
    for index, target in enumerate(targets):
        has_fallback = index + 1 < len(targets)
        started = time.perf_counter()
        try:
            provider = get_provider(target.provider)
            completion = provider.complete(_llm_call(body, target))
        except UnknownProvider as exc:
            failures.append(_failure(target, str(exc)))
            if not has_fallback:
                return _error(ErrorType.NO_ROUTE, str(exc), fallback_from=failures)
            continue
        except ProviderError as exc:
            latency_ms = (time.perf_counter() - started) * 1000
            if exc.transient and not context.is_last_attempt:
                raise RetryLater(f"{target}: {exc}", delay=exc.retry_after) from exc
            log_extra = {"request_id": context.run_id, "provider": target.provider, "model": target.model,
                         "attempt": context.attempt, "error": str(exc)}
            if has_fallback:
                logger.warning("nexus.provider_failed_trying_fallback", extra=log_extra)
                failures.append(_failure(target, str(exc)))
                continue
            logger.error("nexus.provider_failed", extra=log_extra)
            return _error(
                exc.error_type,
                f"{exc} (attempt {context.attempt} of {context.max_attempts})",
                model=target.model,
                provider=target.provider,
                latency_ms=round(latency_ms, 3),
                fallback_from=failures,
            )

        latency_ms = (time.perf_counter() - started) * 1000
        cost = cost_usd(completion.model, completion.input_tokens, completion.output_tokens)
        return {
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
            "fallback_from": failures,
        }
    raise AssertionError("a route always has at least one target")  # pragma: no cover


def publish(context: StepContext) -> dict:
    """Send the result (a completion or an error) to ``ai_results`` in the step's transaction."""
    outcome = context.outputs["route_llm"]
    publish_result({"request_id": context.run_id, **outcome})
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "nexus.request_completed",
            extra={"request_id": context.run_id, "agent_id": context.input.get("agent_id"),
                   "status": outcome["status"], "model": outcome.get("model"), "latency_ms": outcome.get("latency_ms")},
        )
    return {"queue": AI_RESULTS, "status": outcome["status"]}


def track_metrics(context: StepContext) -> dict:
    """Record the request's tokens, cost and latency per model and task type (once per request).

    An eager run writes the record with its final statement, which saves a round trip per request.
    """
    body = context.input
    outcome = context.outputs["route_llm"]
    usage = outcome.get("usage") or {}
    record = {
        "request_id": context.run_id,
        "agent_id": str(body.get("agent_id") or "")[:200],
        "task_type": str(body.get("task_type") or "")[:40],
        "complexity": str(body.get("complexity") or "")[:20],
        "status": outcome["status"],
        "error_type": (outcome.get("error") or {}).get("type", ""),
        "provider": outcome.get("provider") or "",
        "model": outcome.get("model") or "",
        "fallback_used": bool(outcome.get("fallback_from")) and outcome["status"] == ResultStatus.OK,
        "input_tokens": usage.get("input_tokens"),
        "output_tokens": usage.get("output_tokens"),
        "total_tokens": usage.get("total_tokens"),
        # JSON carries the float's shortest repr, which numeric reads exactly, as Decimal(str(cost)) would.
        "cost_usd": outcome.get("cost_usd"),
        "latency_ms": outcome.get("latency_ms"),
    }
    execute_with_completion(_USAGE_INSERT_SQL, [json.dumps(record)])
    return {"recorded": True}


class LlmRequestFlow(Flow):
    # NOTE: provider failures always end in a published result, but a run that fails on an
    # unexpected exception (a bug, a lost database) publishes nothing, so the agent waits for its
    # own timeout. The run's error is in the admin under Quantum flow.
    slug = "nexus_llm"
    steps = (
        Step("validate", validate, max_attempts=1),
        # None: WORKER_MAX_ATTEMPTS attempts, read when the step runs.
        Step("route_llm", route_llm, depends_on=["validate"], base_delay=settings.WORKER_BACKOFF_BASE_SECONDS),
        Step("publish_result", publish, depends_on=["route_llm"], base_delay=settings.WORKER_BACKOFF_BASE_SECONDS),
        # A handler receives only its dependencies' outputs, so track_metrics names route_llm as well.
        Step(
            "track_metrics",
            track_metrics,
            depends_on=["route_llm", "publish_result"],
            base_delay=settings.WORKER_BACKOFF_BASE_SECONDS,
        ),
    )


def _llm_call(body: dict, target: Target) -> LlmCall:
    return LlmCall(
        model=target.model,
        task_type=body["task_type"],
        messages=body.get("messages"),
        input=body.get("input"),
        max_tokens=body.get("max_tokens"),
        temperature=body.get("temperature"),
        tools=body.get("tools"),
        previous_response_id=body.get("previous_response_id"),
    )


def _failure(target: Target, error: str) -> dict:
    return {"provider": target.provider, "model": target.model, "error": error}


def _error(error_type: str, message: str, **fields) -> dict:
    return {
        "status": ResultStatus.ERROR.value,
        "response": None,
        "usage": None,
        "cost_usd": None,
        "error": {"type": str(error_type), "message": message},
        **fields,
    }
