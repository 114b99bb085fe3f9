"""Republish rule versions whose message or result was lost, in batches that each commit on their own.

A batch locks its rows with ``SKIP LOCKED``, sends their messages with one ``send_batch`` and
records the new message ids in the same transaction, so an interrupted run leaves every batch
either fully sent and recorded or untouched. Genesis applies by ``(rule_id, version)``, so a
version that arrives twice is applied once.
"""
import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from singularity.messaging.queues import GENESIS_RULE_UPDATES

from .models import PublishedRule, PublishStatus
from .publisher import rule_update_body

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackfillScope:
    """The filter of rule versions a backfill considers: by default only those never acknowledged."""

    since: datetime | None = None
    namespace: str | None = None
    include_acknowledged: bool = False

    def queryset(self) -> QuerySet:
        rules = PublishedRule.objects.all()
        if not self.include_acknowledged:
            rules = rules.filter(status=PublishStatus.PUBLISHED)
        if self.since is not None:
            rules = rules.filter(published_at__gte=self.since)
        if self.namespace is not None:
            rules = rules.filter(namespace=self.namespace)
        return rules.order_by("id")


@dataclass
class BatchResult:
    """The outcome of one batch: versions sent again, and counts of versions skipped by reason."""

    sent: list[PublishedRule] = field(default_factory=list)
    still_queued: int = 0  # their message is still in genesis_rule_updates, so it was not lost
    no_longer_in_scope: int = 0  # acknowledged, or locked by a concurrent backfill, since selected


def candidate_ids(scope: BackfillScope, *, after_id: int, limit: int) -> list[int]:
    """Return the next ``limit`` ids in scope after ``after_id``, in id order."""
    return list(scope.queryset().filter(id__gt=after_id).values_list("id", flat=True)[:limit])


def queued_msg_ids(msg_ids: list[int]) -> set[int]:
    """Return which of ``msg_ids`` are still messages of ``genesis_rule_updates`` (visible or not)."""
    if not msg_ids:
        return set()
    # The table name cannot be a bound parameter; it is the constant queue name, checked by pgmq's rules.
    table = connection.ops.quote_name(f"q_{GENESIS_RULE_UPDATES}")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT msg_id FROM pgmq.{table} WHERE msg_id = ANY(%s)", [msg_ids])
        return {row[0] for row in cursor.fetchall()}


def republish_batch(scope: BackfillScope, ids: list[int], *, dry_run: bool = False) -> BatchResult:
    """Send the rule versions ``ids`` again unless they left the scope or their message is still queued."""
    from singularity.models import Queue

    result = BatchResult()
    with transaction.atomic():
        rules = list(scope.queryset().filter(id__in=ids).select_for_update(skip_locked=True))
        result.no_longer_in_scope = len(ids) - len(rules)
        queued = queued_msg_ids([rule.msg_id for rule in rules if rule.msg_id is not None])
        to_send = [rule for rule in rules if rule.msg_id not in queued]
        result.still_queued = len(rules) - len(to_send)
        if dry_run or not to_send:
            result.sent = to_send
            return result

        msg_ids = Queue.objects.send_batch(GENESIS_RULE_UPDATES, [rule_update_body(rule) for rule in to_send])
        sent_at = timezone.now()
        for rule, msg_id in zip(to_send, msg_ids):
            rule.msg_id = msg_id
            rule.publish_count += 1
            rule.last_sent_at = sent_at
            rule.updated_at = sent_at  # bulk_update does not apply auto_now
        PublishedRule.objects.bulk_update(to_send, ["msg_id", "publish_count", "last_sent_at", "updated_at"])
        result.sent = to_send
    logger.info(
        "rules.batch_republished",
        extra={"queue": GENESIS_RULE_UPDATES, "count": len(to_send), "first_msg_id": msg_ids[0], "last_msg_id": msg_ids[-1]},
    )
    return result
