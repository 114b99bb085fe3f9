"""Message contracts of the human-in-the-loop queues, shared by the agents' side and observer.

``observer_hitl_requests`` carries an agent's request for approval or an answer, and the shared
``observer_decisions`` queue carries observer's reply, routed to the waiting agent by request_id.
"""
import uuid
from datetime import datetime

from django.db import models

from singularity.messaging.contracts import Contract, Field
from singularity.messaging.queues import (
    OBSERVER_DECISIONS,
    OBSERVER_HITL_REQUESTS,
    OBSERVER_HITL_WITHDRAWALS,
    QueueNameError,
    validate_queue_name,
)

# Column sizes on both sides; the contract checks them so a long value is dead-lettered, not a database error.
MAX_AGENT_ID_LENGTH = 200
MAX_TASK_TYPE_LENGTH = 100
MAX_SUMMARY_LENGTH = 1000
QUESTION_TASK_TYPE = "question"
# The quantum_flow event delivered, keyed by request_id, when a decision is stored. A trigger
# (migration singularity_hitl 0002) delivers it with the decision's fields as payload.
DECISION_EVENT = "hitl.decision"


class RequestType(models.TextChoices):
    APPROVAL = "approval"
    QUESTION = "question"


class DecisionStatus(models.TextChoices):
    """The outcomes observer reports on the decisions queue; ``pending`` is never sent."""

    APPROVED = "approved"
    REJECTED = "rejected"
    ANSWERED = "answered"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


def check_uuid(value: str) -> str | None:
    try:
        uuid.UUID(value)
    except ValueError:
        return f"must be a UUID, got {value!r}"
    return None


def check_timestamp(value: str) -> str | None:
    """Accept an ISO 8601 timestamp with a UTC offset; a naive time would be read in an unknown zone."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return f"must be an ISO 8601 timestamp, got {value!r}"
    if parsed.tzinfo is None:
        return f"must carry a UTC offset (for example 2030-01-01T12:00:00+00:00), got {value!r}"
    return None


def check_queue_name(value: str) -> str | None:
    try:
        validate_queue_name(value)
    except QueueNameError as exc:
        return f"is not a valid queue name: {exc}"
    return None


def check_length(limit: int, *, allow_empty: bool = False):
    def check(value: str) -> str | None:
        if not value.strip() and not allow_empty:
            return "must not be empty"
        if len(value) > limit:
            return f"has {len(value)} characters; at most {limit} are allowed"
        return None

    return check


HITL_REQUEST = Contract(
    queue=OBSERVER_HITL_REQUESTS,
    fields=(
        Field("request_id", (str,), check=check_uuid),
        Field("type", (str,), choices=RequestType),
        Field("agent_id", (str,), check=check_length(MAX_AGENT_ID_LENGTH)),
        Field("task_type", (str,), check=check_length(MAX_TASK_TYPE_LENGTH)),
        Field("payload", (dict,)),
        Field("summary", (str,), required=False, nullable=True, check=check_length(MAX_SUMMARY_LENGTH, allow_empty=True)),
        Field("metadata", (dict,), required=False, nullable=True),
        Field("expires_at", (str,), required=False, nullable=True, check=check_timestamp),
        Field("reply_to", (str,), check=check_queue_name),
        Field("created_at", (str,), required=False, nullable=True, check=check_timestamp),
    ),
)

HITL_DECISION = Contract(
    queue=OBSERVER_DECISIONS,
    fields=(
        Field("request_id", (str,), check=check_uuid),
        Field("decision", (str,), choices=DecisionStatus),
        Field("decided_by", (str,), required=False, nullable=True),
        Field("reason", (str,), required=False, nullable=True),
        Field("answer", (str,), required=False, nullable=True),
        Field("decided_at", (str,), check=check_timestamp),
    ),
)

# An agent's withdrawal of a request it no longer needs. Observer cancels the approval if it is
# still pending, then replies ``cancelled`` as for any decision.
HITL_WITHDRAWAL = Contract(
    queue=OBSERVER_HITL_WITHDRAWALS,
    fields=(
        Field("request_id", (str,), check=check_uuid),
        Field("reason", (str,), check=check_length(MAX_SUMMARY_LENGTH)),
        Field("withdrawn_at", (str,), check=check_timestamp),
    ),
)
