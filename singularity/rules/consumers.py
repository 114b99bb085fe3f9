"""The ``genesis_rule_updates_results`` consumer: record genesis's result on the published rule once."""
import logging

from django.utils import timezone

from singularity.messaging.queues import GENESIS_RULE_UPDATES_RESULTS
from singularity.messaging.registry import consumer
from singularity.messaging.runtime import DeadLetter, Delivery

from .contracts import RULE_RESULT, ResultStatus
from .models import PublishedRule, PublishStatus

logger = logging.getLogger(__name__)

_STATUS_BY_RESULT = {ResultStatus.APPLIED: PublishStatus.APPLIED, ResultStatus.REJECTED: PublishStatus.REJECTED}


@consumer(GENESIS_RULE_UPDATES_RESULTS, name="genesis_rule_updates_results", contract=RULE_RESULT)
def record_result(delivery: Delivery) -> DeadLetter | None:
    """Move the rule version out of ``published``; a second result for it changes nothing.

    The conditional update decides: only the first result finds the row still ``published``. A
    backfill that resends an acknowledged version therefore cannot flip its recorded outcome.
    """
    body = delivery.body
    ids = {**delivery.log_ids, "rule_id": body["rule_id"], "version": body["version"]}
    status = _STATUS_BY_RESULT[ResultStatus(body["status"])]
    claimed = PublishedRule.objects.filter(
        rule_id=body["rule_id"], version=body["version"], status=PublishStatus.PUBLISHED
    ).update(status=status, last_error=body.get("error") or "", acknowledged_at=timezone.now(), updated_at=timezone.now())
    if claimed:
        log = logger.warning if status == PublishStatus.REJECTED else logger.info
        log("rules.result_recorded", extra={**ids, "status": status, "error": body.get("error") or ""})
        return None
    if not PublishedRule.objects.filter(rule_id=body["rule_id"], version=body["version"]).exists():
        return DeadLetter("unknown_rule", f"no published rule has rule_id {body['rule_id']!r} and version {body['version']}")
    logger.info("rules.result_duplicate_ignored", extra=ids)
    return None
