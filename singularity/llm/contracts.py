"""Message contracts of ``ai_requests`` and ``ai_results``, shared by singularity and nexus."""
import uuid

from django.db import models

from singularity.messaging.contracts import Contract, Field
from singularity.messaging.queues import AI_REQUESTS, AI_RESULTS


class TaskType(models.TextChoices):
    GENERAL = "general"
    CODE = "code"
    DOCUMENTATION = "documentation"
    ANALYSIS = "analysis"
    SUMMARIZATION = "summarization"
    RULE_GENERATION = "rule_generation"


class Complexity(models.TextChoices):
    SIMPLE = "simple"
    MEDIUM = "medium"
    COMPLEX = "complex"


class ResultStatus(models.TextChoices):
    OK = "ok"
    ERROR = "error"


class ErrorType(models.TextChoices):
    """The ``error.type`` values of an error result."""

    INVALID_REQUEST = "invalid_request"
    NO_ROUTE = "no_route"
    PROVIDER_ERROR = "provider_error"
    RATE_LIMITED = "rate_limited"
    PROVIDER_UNAVAILABLE = "provider_unavailable"


MESSAGE_ROLES = ("system", "developer", "user", "assistant")
# The quantum_flow event delivered, keyed by request_id, when a result is stored. A trigger
# (migration singularity 0005) delivers it with the request_id and status as payload.
LLM_RESULT_EVENT = "llm.result"


def _check_uuid(value: str) -> str | None:
    # Only the canonical form: the id is also a notification payload, matched as text.
    try:
        canonical = str(uuid.UUID(value))
    except ValueError:
        canonical = None
    if canonical != value:
        return f"must be a UUID in canonical form (8-4-4-4-12 lowercase hex digits), got {value!r}"
    return None


def _check_messages(value: list) -> str | None:
    if not value:
        return "must contain at least one message"
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            return f"item {index} must be an object with 'role' and 'content'"
        if item.get("role") not in MESSAGE_ROLES:
            return f"item {index} has role {item.get('role')!r}; expected one of {', '.join(MESSAGE_ROLES)}"
        if not isinstance(item.get("content"), str):
            return f"item {index} must have 'content' as a string"
    return None


def _check_positive(value: int) -> str | None:
    return None if value > 0 else f"must be > 0, got {value}"


def _check_temperature(value: float) -> str | None:
    return None if 0 <= value <= 2 else f"must be between 0 and 2, got {value}"


AI_REQUEST = Contract(
    queue=AI_REQUESTS,
    fields=(
        Field("request_id", (str,), check=_check_uuid),
        Field("agent_id", (str,)),
        Field("task_type", (str,), choices=TaskType),
        Field("complexity", (str,), choices=Complexity),
        Field("messages", (list,), required=False, check=_check_messages),
        Field("input", (str,), required=False),
        Field("model", (str,), required=False),
        Field("max_tokens", (int,), required=False, check=_check_positive),
        Field("temperature", (int, float), required=False, check=_check_temperature),
        Field("tools", (list,), required=False),
        Field("previous_response_id", (str,), required=False),
        Field("created_at", (str,), required=False),
    ),
    one_of=(("messages", "input"),),
)

AI_RESULT = Contract(
    queue=AI_RESULTS,
    fields=(
        Field("request_id", (str,), check=_check_uuid),
        Field("status", (str,), choices=ResultStatus),
        Field("response", (str,), required=False, nullable=True),
        Field("model", (str,), required=False, nullable=True),
        Field("provider", (str,), required=False, nullable=True),
        Field("usage", (dict,), required=False, nullable=True),
        Field("cost_usd", (int, float), required=False, nullable=True),
        Field("latency_ms", (int, float), required=False, nullable=True),
        Field("error", (dict,), required=False, nullable=True),
    ),
)

# The runtime checks only this before nexus handles a request. Without a valid request_id no error
# result can reach the agent, so such a body is dead-lettered at once. Nexus checks the rest itself and
# answers the waiting agent with an error result.
AI_REQUEST_ENVELOPE = Contract(queue=AI_REQUESTS, fields=(Field("request_id", (str,), check=_check_uuid),))
