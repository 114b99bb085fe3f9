"""Message contracts of ``genesis_rule_updates`` and ``genesis_rule_updates_results``.

Shared by the publisher (singularity) and the consumer (genesis), as the LLM contracts are shared
by singularity and nexus.
"""
import math

from django.db import models
from django.utils.dateparse import parse_datetime

from singularity.messaging.contracts import Contract, Field
from singularity.messaging.queues import GENESIS_RULE_UPDATES, GENESIS_RULE_UPDATES_RESULTS

MAX_RULE_ID_LENGTH = 200
MAX_NAMESPACE_LENGTH = 200
MAX_SOURCE_LENGTH = 200
MAX_VERSION = 2**31 - 1  # PostgreSQL INTEGER, the column type of both rule tables


class RuleType(models.TextChoices):
    LINTING = "linting"
    VALIDATION = "validation"
    SECURITY = "security"
    PERFORMANCE = "performance"


class ResultStatus(models.TextChoices):
    """The ``status`` of a result message: what genesis did with one rule version."""

    APPLIED = "applied"
    REJECTED = "rejected"


def _check_identifier(max_length: int):
    def check(value: str) -> str | None:
        if not value.strip():
            return "must not be blank"
        if len(value) > max_length:
            return f"has {len(value)} characters; at most {max_length} are allowed"
        return None

    return check


def _check_version(value: int) -> str | None:
    return None if 1 <= value <= MAX_VERSION else f"must be from 1 to {MAX_VERSION}, got {value}"


def _check_confidence(value: float) -> str | None:
    if not math.isfinite(value) or not 0 <= value <= 1:
        return f"must be between 0 and 1, got {value}"
    return None


def _check_pattern(value: dict) -> str | None:
    # An empty pattern would match everything, which no learned rule means.
    return None if value else "must be a non-empty object"


def _check_action(value: dict) -> str | None:
    action_type = value.get("type")
    if not isinstance(action_type, str) or not action_type.strip():
        return f"must have a non-empty string 'type' (for example 'warn' or 'block'), got {action_type!r}"
    return None


def _check_timestamp(value: str) -> str | None:
    moment = parse_datetime(value)
    if moment is None or moment.tzinfo is None:
        return f"must be an ISO 8601 date and time with a UTC offset, got {value!r}"
    return None


RULE_UPDATE = Contract(
    queue=GENESIS_RULE_UPDATES,
    fields=(
        Field("rule_id", (str,), check=_check_identifier(MAX_RULE_ID_LENGTH)),
        Field("version", (int,), check=_check_version),
        Field("namespace", (str,), check=_check_identifier(MAX_NAMESPACE_LENGTH)),
        Field("rule_type", (str,), choices=RuleType),
        Field("pattern", (dict,), check=_check_pattern),
        Field("action", (dict,), check=_check_action),
        Field("confidence", (int, float), check=_check_confidence),
        Field("source_instance", (str,), check=_check_identifier(MAX_SOURCE_LENGTH)),
        Field("published_at", (str,), check=_check_timestamp),
    ),
)

# What the runtime checks before genesis sees an update: without a rule_id and a version no result can
# name the failed rule, so such a body is dead-lettered at once. Genesis checks the rest itself,
# sends a rejected result, and dead-letters the original.
RULE_UPDATE_ENVELOPE = Contract(
    queue=GENESIS_RULE_UPDATES,
    fields=(
        Field("rule_id", (str,), check=_check_identifier(MAX_RULE_ID_LENGTH)),
        Field("version", (int,), check=_check_version),
    ),
)

RULE_RESULT = Contract(
    queue=GENESIS_RULE_UPDATES_RESULTS,
    fields=(
        Field("rule_id", (str,), check=_check_identifier(MAX_RULE_ID_LENGTH)),
        Field("version", (int,), check=_check_version),
        Field("status", (str,), choices=ResultStatus),
        Field("error", (str,), required=False, nullable=True),
        Field("applied_version", (int,), required=False, nullable=True),
        Field("completed_at", (str,), required=False),
    ),
)
