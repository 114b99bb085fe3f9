"""The monitor: sample every queue and the rule pipeline, keep the samples, and evaluate the alerts.

``run_monitor`` is the django-q2 schedule's entry point (created by genesis's migrations); it may
also be called by hand, or by ``manage.py genesis_monitor``.
"""
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from singularity.messaging.queues import DEAD_LETTERS, GENESIS_RULE_UPDATES, validate_queue_name
from singularity.rules.status import publish_figures

from .models import MonitorSample, QueueSample, Rule

logger = logging.getLogger(__name__)


def dead_letters_by_source() -> dict[str, int]:
    """Count the messages waiting in ``dead_letters`` by the queue they came from."""
    table = connection.ops.quote_name(f"q_{DEAD_LETTERS}")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT message->>'queue', count(*) FROM pgmq.{table} GROUP BY 1")
        return {source or "": count for source, count in cursor.fetchall()}


def retrying_count(queue: str) -> int:
    """Count the messages of ``queue`` that have been read more than once, so failed at least once.

    NOTE: a message whose first attempt failed is counted only once it is read again, because
    pgmq's read count cannot tell a failed first attempt from one still in progress.
    """
    table = connection.ops.quote_name(f"q_{validate_queue_name(queue)}")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM pgmq.{table} WHERE read_ct > 1")
        return cursor.fetchone()[0]


def take_sample() -> MonitorSample:
    """Store one ``MonitorSample`` with a ``QueueSample`` per existing queue and return it."""
    from singularity.models import Queue

    now = timezone.now()
    previous_at = MonitorSample.objects.aggregate(latest=Max("sampled_at"))["latest"]
    window_start = previous_at or now - timedelta(minutes=settings.GENESIS_MONITOR_INTERVAL_MINUTES)
    applied = Rule.objects.filter(applied_at__gt=window_start, applied_at__lte=now)
    lags = [rule.publish_to_apply_seconds for rule in applied.only("applied_at", "published_at")]

    queue_metrics = Queue.objects.metrics_all()
    dead_letters = dead_letters_by_source()
    backlog = next((m for m in queue_metrics if m.queue_name == GENESIS_RULE_UPDATES), None)
    has_updates_queue = backlog is not None
    publisher = publish_figures(settings.GENESIS_ALERT_UNACKNOWLEDGED_SECONDS)

    with transaction.atomic():
        sample = MonitorSample.objects.create(
            sampled_at=now,
            backlog_age_seconds=backlog.oldest_msg_age_sec if has_updates_queue else None,
            apply_lag_seconds=max(lags) if lags else None,
            applied_since_previous=len(lags),
            unacknowledged=publisher.unacknowledged,
            unacknowledged_overdue=publisher.unacknowledged_overdue,
            rejected_total=publisher.rejected_total,
            apply_failures=dead_letters.get(GENESIS_RULE_UPDATES, 0)
            + (retrying_count(GENESIS_RULE_UPDATES) if has_updates_queue else 0),
        )
        QueueSample.objects.bulk_create(
            QueueSample(
                sample=sample,
                queue_name=metrics.queue_name,
                depth=metrics.queue_length,
                visible_depth=metrics.visible_length,
                oldest_age_seconds=metrics.oldest_msg_age_sec,
                newest_age_seconds=metrics.newest_msg_age_sec,
                total_sent=metrics.total_messages,
                dead_letters=dead_letters.get(metrics.queue_name, 0),
            )
            for metrics in queue_metrics
        )
    return sample


def prune_samples() -> int:
    """Delete samples older than ``GENESIS_SAMPLE_RETENTION_DAYS``; return how many monitor runs went."""
    cutoff = timezone.now() - timedelta(days=settings.GENESIS_SAMPLE_RETENTION_DAYS)
    deleted, by_model = MonitorSample.objects.filter(sampled_at__lt=cutoff).delete()
    return by_model.get(MonitorSample._meta.label, 0)


@dataclass(frozen=True)
class MonitorRun:
    """The summary of one ``run_monitor`` call: the sample, incidents opened and resolved, samples pruned."""

    sample_id: int
    opened: list[int]
    resolved: list[int]
    pruned: int

    def as_dict(self) -> dict:
        return {"sample_id": self.sample_id, "opened": self.opened, "resolved": self.resolved, "pruned": self.pruned}


def run_monitor() -> dict:
    """Sample, evaluate the alerts, prune old samples; return a summary the scheduler stores."""
    from .alerts import evaluate_alerts

    sample = take_sample()
    transitions = evaluate_alerts(sample)
    run = MonitorRun(
        sample_id=sample.pk,
        opened=[incident.pk for incident in transitions.opened],
        resolved=[incident.pk for incident in transitions.resolved],
        pruned=prune_samples(),
    )
    logger.info(
        "genesis.monitor_ran",
        extra={
            "sample_id": sample.pk,
            "backlog_age_s": sample.backlog_age_seconds,
            "unacknowledged": sample.unacknowledged,
            "opened": len(run.opened),
            "resolved": len(run.resolved),
        },
    )
    return run.as_dict()
