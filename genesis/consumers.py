"""The ``genesis_rule_updates`` consumer: validate, apply by ``(rule_id, version)``, send the result.

The handler runs in the runtime's transaction, so the rule rows, the result message and the
acknowledgement of the update commit together: a crash between them redelivers the update, and
the redelivery is a duplicate that changes nothing.
"""
import logging
from datetime import datetime, timezone

from django.db import IntegrityError, connection, transaction
from django.utils.dateparse import parse_datetime

from singularity.messaging.contracts import InvalidMessage
from singularity.messaging.queues import GENESIS_RULE_UPDATES, GENESIS_RULE_UPDATES_RESULTS
from singularity.messaging.registry import consumer
from singularity.messaging.runtime import DeadLetter, Delivery, RetryLater
from singularity.rules.contracts import RULE_UPDATE, RULE_UPDATE_ENVELOPE, ResultStatus

from .models import Rule, RuleStatus

logger = logging.getLogger(__name__)

# Key space of the advisory locks that serialize the versions of one rule (an arbitrary constant).
_RULE_LOCK_SPACE = 0x6E6573


@consumer(GENESIS_RULE_UPDATES, name="genesis_rule_updates", contract=RULE_UPDATE_ENVELOPE)
def apply_rule_update(delivery: Delivery) -> DeadLetter | None:
    """Apply one rule version, or send a result that says why not.

    - an invalid body: a rejected result with the reason, and the original dead-lettered;
    - a version already stored: a duplicate: nothing changes and the result is ``applied`` again;
    - a version older than a stored one: nothing changes and the result is ``rejected``;
    - otherwise: stored as applied, and the rule's previously applied version superseded.
    """
    body = delivery.body
    rule_id, version = body["rule_id"], body["version"]
    ids = {**delivery.log_ids, "rule_id": rule_id, "version": version}
    try:
        RULE_UPDATE.validate(body)
    except InvalidMessage as exc:
        # The publisher learns at once, and the bad message is kept for an operator.
        publish_result(rule_id, version, ResultStatus.REJECTED, error=f"invalid rule update: {exc}")
        return DeadLetter("invalid_body", str(exc))

    _lock_rule(rule_id)
    stored = list(Rule.objects.filter(rule_id=rule_id).order_by("-version").values_list("version", "status"))
    latest_version = stored[0][0] if stored else None
    if any(stored_version == version for stored_version, _ in stored):
        logger.info("genesis.rule_duplicate_ignored", extra=ids)
        publish_result(rule_id, version, ResultStatus.APPLIED, applied_version=_applied_version(stored))
        return None
    if latest_version is not None and latest_version > version:
        error = f"version {version} is older than stored version {latest_version}; nothing changed"
        logger.warning("genesis.rule_stale_ignored", extra={**ids, "latest_version": latest_version})
        publish_result(rule_id, version, ResultStatus.REJECTED, error=error, applied_version=_applied_version(stored))
        return None

    now = datetime.now(timezone.utc)
    try:
        with transaction.atomic():
            superseded = Rule.objects.filter(rule_id=rule_id, status=RuleStatus.APPLIED).update(
                status=RuleStatus.SUPERSEDED, superseded_at=now, updated_at=now
            )
            Rule.objects.create(
                rule_id=rule_id,
                version=version,
                namespace=body["namespace"],
                rule_type=body["rule_type"],
                pattern=body["pattern"],
                action=body["action"],
                confidence=float(body["confidence"]),
                source_instance=body["source_instance"],
                status=RuleStatus.APPLIED,
                msg_id=delivery.message.msg_id,
                published_at=parse_datetime(body["published_at"]),
                applied_at=now,
            )
    except IntegrityError as exc:
        # Only possible if another transaction stored this rule without the advisory lock.
        raise RetryLater(f"rule {rule_id!r} version {version} conflicts with a concurrent write: {exc}") from exc
    publish_result(rule_id, version, ResultStatus.APPLIED, applied_version=version)
    logger.info("genesis.rule_applied", extra={**ids, "superseded": superseded, "namespace": body["namespace"]})
    return None


def publish_result(
    rule_id: str, version: int, status: ResultStatus, *, error: str | None = None, applied_version: int | None = None
) -> int:
    from singularity.models import Queue

    body = {
        "rule_id": rule_id,
        "version": version,
        "status": status.value,
        "error": error,
        "applied_version": applied_version,
        "completed_at": datetime.now(timezone.utc).isoformat(),
    }
    return Queue.objects.send(GENESIS_RULE_UPDATES_RESULTS, body)


def _lock_rule(rule_id: str) -> None:
    """Hold a transaction-scoped lock on ``rule_id`` so two workers never apply its versions at once."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s::integer, hashtext(%s))", [_RULE_LOCK_SPACE, rule_id])


def _applied_version(stored: list[tuple[int, str]]) -> int | None:
    return next((version for version, status in stored if status == RuleStatus.APPLIED), None)
