"""The agents' API of the LLM path: ``dispatch_request`` and ``await_responses_result``."""
import logging
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from django.db import transaction

from singularity.messaging.contracts import InvalidMessage
from singularity.messaging.notifications import get_hub
from singularity.messaging.queues import AI_REQUESTS

from .channels import RESULT_STORED_CHANNEL
from .contracts import AI_REQUEST

logger = logging.getLogger(__name__)

REQUEST_OPTIONS = ("model", "max_tokens", "temperature", "tools", "previous_response_id")
# Waiting is driven by notifications; this recheck only covers one lost while the listener reconnected.
SAFETY_RECHECK_SECONDS = 5.0


class LlmRequestError(Exception):
    """Base class of the LLM path's errors."""


class InvalidRequest(LlmRequestError, ValueError):
    """``dispatch_request`` was called with arguments the request contract rejects."""


class UnknownRequest(LlmRequestError, LookupError):
    """No request with this ``request_id`` was ever dispatched."""


class ResultTimeout(LlmRequestError, TimeoutError):
    """No result arrived within the timeout; the request stays queued and may still complete."""

    def __init__(self, request_id: str, timeout: float):
        super().__init__(
            f"No result for request {request_id} within {timeout:g} s; the request stays queued and is "
            "answered when a worker reaches it."
        )
        self.request_id = request_id
        self.timeout = timeout


class ProviderFailure(LlmRequestError):
    """The request reached nexus but produced an error result; ``result`` is the stored ``JobResult``."""

    def __init__(self, result):
        super().__init__(f"Request {result.request_id} failed: {result.error_type}: {result.error_message}")
        self.result = result


def dispatch_request(
    messages: list[dict] | str,
    *,
    task_type: str,
    complexity: str,
    agent_id: str,
    **options: Any,
) -> str:
    """Store an ``LlmRequest`` and queue it on ``ai_requests`` in one transaction; return its request_id.

    ``messages`` is a list of ``{"role", "content"}`` objects or a plain input string. ``options``
    may hold ``model``, ``max_tokens``, ``temperature``, ``tools`` and ``previous_response_id``.
    """
    from singularity.models import LlmRequest, Queue

    unknown = sorted(set(options) - set(REQUEST_OPTIONS))
    if unknown:
        raise InvalidRequest(
            f"Unknown option(s) {', '.join(unknown)}; supported options are {', '.join(REQUEST_OPTIONS)}."
        )
    request_id = str(uuid.uuid4())
    body = {
        "request_id": request_id,
        "agent_id": agent_id,
        "task_type": str(task_type),
        "complexity": str(complexity),
        **({"input": messages} if isinstance(messages, str) else {"messages": messages}),
        **{key: value for key, value in options.items() if value is not None},
        "created_at": datetime.now(timezone.utc).isoformat(),
    }
    try:
        AI_REQUEST.validate(body)
    except InvalidMessage as exc:
        raise InvalidRequest(f"Invalid LLM request: {exc}.") from exc

    with transaction.atomic():
        LlmRequest.objects.create(
            request_id=request_id,
            agent_id=agent_id,
            task_type=body["task_type"],
            complexity=body["complexity"],
            messages=messages,
            options={key: value for key, value in options.items() if value is not None},
        )
        msg_id = Queue.objects.send(AI_REQUESTS, body)
    logger.info(
        "llm.request_dispatched",
        extra={"request_id": request_id, "agent_id": agent_id, "queue": AI_REQUESTS, "msg_id": msg_id},
    )
    return request_id


def await_responses_result(request_id: str, timeout: float = 60.0, *, raise_on_error: bool = True):
    """Wait for the ``JobResult`` of ``request_id`` and return it.

    Raises ``ResultTimeout`` when none arrives within ``timeout`` seconds, ``UnknownRequest`` for an
    id that was never dispatched, and ``ProviderFailure`` for an error result unless
    ``raise_on_error`` is false, in which case the error result is returned.
    """
    from singularity.models import LlmRequest

    request_id = str(request_id)
    deadline = time.monotonic() + timeout
    with get_hub().watch(RESULT_STORED_CHANNEL, request_id) as watch:
        while True:
            # One query returns both whether the request exists and its result, if any.
            request = LlmRequest.objects.select_related("result").filter(request_id=request_id).first()
            if request is None:
                raise UnknownRequest(
                    f"No LLM request has request_id {request_id}; use the id dispatch_request returned."
                )
            result = getattr(request, "result", None)
            if result is not None:
                if not result.ok and raise_on_error:
                    raise ProviderFailure(result)
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ResultTimeout(request_id, timeout)
            watch.wait(min(remaining, SAFETY_RECHECK_SECONDS))
