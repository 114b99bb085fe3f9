"""``publish_rule``: store a rule version and queue it for genesis in one transaction (the outbox)."""
import logging
import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from singularity.messaging.contracts import InvalidMessage
from singularity.messaging.queues import GENESIS_RULE_UPDATES

from .contracts import RULE_UPDATE
from .models import PublishedRule

logger = logging.getLogger(__name__)


class RulePublishError(Exception):
    """Base class of the publisher's errors."""


class InvalidRule(RulePublishError, ValueError):
    """``publish_rule`` was called with a rule the ``genesis_rule_updates`` contract rejects."""


class RuleVersionExists(RulePublishError):
    """This ``(rule_id, version)`` was already published; versions are immutable once sent."""


def rule_update_body(rule: PublishedRule) -> dict:
    """Build the ``genesis_rule_updates`` message of a stored rule version."""
    return {
        "rule_id": rule.rule_id,
        "version": rule.version,
        "namespace": rule.namespace,
        "rule_type": rule.rule_type,
        "pattern": rule.pattern,
        "action": rule.action,
        "confidence": rule.confidence,
        "source_instance": rule.source_instance,
        "published_at": rule.published_at.isoformat(),
    }


def publish_rule(
    *,
    namespace: str,
    rule_type: str,
    pattern: dict,
    action: dict,
    confidence: float,
    source_instance: str,
    rule_id: str | None = None,
    version: int | None = None,
) -> PublishedRule:
    """Store a rule version as published and send it to ``genesis_rule_updates``; return the row.

    Both writes commit together or not at all. Without ``rule_id`` a new rule gets a UUID; without
    ``version`` the rule's next version is used (1 for a new rule). Raises ``InvalidRule`` for
    arguments the message contract rejects and ``RuleVersionExists`` when the version was already
    published, in which case nothing is written or sent.
    """
    from singularity.models import Queue

    rule_id = str(uuid.uuid4()) if rule_id is None else rule_id
    published_at = timezone.now()
    with transaction.atomic():
        if version is None:
            version = _next_version(rule_id)
        rule = PublishedRule(
            rule_id=rule_id,
            version=version,
            namespace=namespace,
            rule_type=str(rule_type),
            pattern=pattern,
            action=action,
            confidence=confidence,
            source_instance=source_instance,
            published_at=published_at,
            last_sent_at=published_at,
        )
        body = rule_update_body(rule)
        _validate(body)
        rule.msg_id = Queue.objects.send(GENESIS_RULE_UPDATES, body)
        try:
            # Leaving the block with the error rolls back the message sent just above.
            rule.save(force_insert=True)
        except IntegrityError as exc:
            raise RuleVersionExists(
                f"Rule {rule_id!r} version {version} was already published. Publish a higher version, "
                "or leave version=None to take the next one."
            ) from exc
    logger.info(
        "rules.rule_published",
        extra={"rule_id": rule_id, "version": version, "queue": GENESIS_RULE_UPDATES, "msg_id": rule.msg_id},
    )
    return rule


def _next_version(rule_id: str) -> int:
    # Two concurrent publishes of one rule may pick the same number; the unique constraint makes
    # the second fail with RuleVersionExists instead of sending a duplicate.
    latest = PublishedRule.objects.filter(rule_id=rule_id).aggregate(latest=Max("version"))["latest"]
    return (latest or 0) + 1


def _validate(body: dict[str, Any]) -> None:
    try:
        RULE_UPDATE.validate(body)
    except InvalidMessage as exc:
        raise InvalidRule(f"Invalid rule {body.get('rule_id')!r} version {body.get('version')!r}: {exc}.") from exc

