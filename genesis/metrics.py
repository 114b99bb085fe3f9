"""Prometheus figures for ``/metrics``, read from the database at scrape time by a custom collector.

Counters come from pgmq's own tables rather than from counters kept in worker memory, so every
web process reports the same values and a restarted worker loses none:

- sent: ``total_messages`` of ``pgmq.metrics`` (the queue's id sequence);
- failed: messages in ``dead_letters`` (waiting or archived) whose ``queue`` is the queue;
- processed: rows of the archive table ``pgmq.a_<queue>`` that were not dead-lettered;
- latency: ``archived_at - enqueued_at`` of those rows, so it includes the time spent waiting.

NOTE: the archive tables grow until someone trims them, and each scrape reads them in full. A
trimmed archive makes the processed and failed counters drop, which Prometheus reads as a reset.
"""
from django.db import connection
from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import CollectorRegistry

from singularity.messaging.queues import DEAD_LETTERS, GENESIS_RULE_UPDATES, validate_queue_name

# Upper bounds in seconds of the latency buckets: from a handler's milliseconds to a backlog's hour.
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)




def _latency_filters(column: str) -> str:
    return ", ".join(f"count(*) FILTER (WHERE {column} <= %s)" for _ in LATENCY_BUCKETS)


def _histogram_buckets(row: tuple, total: int) -> list[tuple[str, float]]:
    buckets = [(str(bound), count) for bound, count in zip(LATENCY_BUCKETS, row)]
    return buckets + [("+Inf", total)]


def archive_figures(queue: str) -> tuple[int, int, float, tuple]:
    """Return ``(failed, processed, latency_sum, bucket_counts)`` of ``queue`` from its archive and the dead letters."""
    # Table names cannot be bound parameters; both names passed pgmq's naming rules.
    archive = connection.ops.quote_name(f"a_{validate_queue_name(queue)}")
    dead_waiting = connection.ops.quote_name(f"q_{DEAD_LETTERS}")
    dead_archived = connection.ops.quote_name(f"a_{DEAD_LETTERS}")
    sql = f"""
        WITH failed AS (
            SELECT DISTINCT (message->>'msg_id')::bigint AS msg_id
            FROM (SELECT message FROM pgmq.{dead_waiting} UNION ALL SELECT message FROM pgmq.{dead_archived}) AS dead
            WHERE message->>'queue' = %s
        ), processed AS (
            SELECT EXTRACT(epoch FROM archived.archived_at - archived.enqueued_at)::float8 AS latency
            FROM pgmq.{archive} AS archived
            WHERE NOT EXISTS (SELECT 1 FROM failed WHERE failed.msg_id = archived.msg_id)
        )
        SELECT (SELECT count(*) FROM failed), count(*), coalesce(sum(latency), 0), {_latency_filters("latency")}
        FROM processed
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [queue, *LATENCY_BUCKETS])
        row = cursor.fetchone()
    return row[0], row[1], row[2], tuple(row[3:])


def apply_lag_figures() -> tuple[int, float, tuple]:
    """Return ``(count, sum, bucket_counts)`` of the publish-to-apply seconds of every stored rule version."""
    from .models import Rule

    table = connection.ops.quote_name(Rule._meta.db_table)
    sql = f"""
        WITH lags AS (SELECT EXTRACT(epoch FROM applied_at - published_at)::float8 AS lag FROM {table})
        SELECT count(*), coalesce(sum(lag), 0), {_latency_filters("lag")} FROM lags
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, list(LATENCY_BUCKETS))
        row = cursor.fetchone()
    return row[0], row[1], tuple(row[2:])


class PipelineCollector:
    """Collect queue, rule pipeline and alert figures from the database on every scrape."""

    def collect(self):
        yield from self._queue_metrics()
        yield from self._rule_metrics()
        yield from self._alert_metrics()

    def _queue_metrics(self):
        from singularity.models import Queue

        labels = ["queue"]
        sent = CounterMetricFamily("singularity_queue_messages_sent", "Messages ever sent to the queue.", labels=labels)
        processed = CounterMetricFamily(
            "singularity_queue_messages_processed", "Messages handled and archived, not dead-lettered.", labels=labels
        )
        failed = CounterMetricFamily(
            "singularity_queue_messages_failed", "Messages from the queue that were dead-lettered.", labels=labels
        )
        latency = HistogramMetricFamily(
            "singularity_queue_processing_latency_seconds",
            "Seconds from enqueue to acknowledgement of processed messages, waiting time included.",
            labels=labels,
        )
        depth = GaugeMetricFamily("singularity_queue_depth", "Messages in the queue, hidden ones included.", labels=labels)
        visible = GaugeMetricFamily("singularity_queue_visible_depth", "Messages ready to be read.", labels=labels)
        oldest = GaugeMetricFamily(
            "singularity_queue_oldest_message_age_seconds", "Age of the oldest message; 0 when empty.", labels=labels
        )
        newest = GaugeMetricFamily(
            "singularity_queue_newest_message_age_seconds", "Age of the newest message; 0 when empty.", labels=labels
        )
        backlog = GaugeMetricFamily(
            "genesis_rule_updates_lag_seconds",
            "Age of the oldest rule update not yet applied (the oldest message in genesis_rule_updates).",
        )
        for metrics in Queue.objects.metrics_all():
            name = [metrics.queue_name]
            failed_count, processed_count, latency_sum, buckets = archive_figures(metrics.queue_name)
            sent.add_metric(name, metrics.total_messages)
            processed.add_metric(name, processed_count)
            failed.add_metric(name, failed_count)
            latency.add_metric(name, _histogram_buckets(buckets, processed_count), latency_sum)
            depth.add_metric(name, metrics.queue_length)
            visible.add_metric(name, metrics.visible_length)
            oldest.add_metric(name, metrics.oldest_msg_age_sec or 0)
            newest.add_metric(name, metrics.newest_msg_age_sec or 0)
            if metrics.queue_name == GENESIS_RULE_UPDATES:
                backlog.add_metric([], metrics.oldest_msg_age_sec or 0)
        yield from (sent, processed, failed, latency, depth, visible, oldest, newest, backlog)

    def _rule_metrics(self):
        from django.conf import settings

        from singularity.rules.status import publish_figures

        from .models import MonitorSample, Rule, RuleStatus

        rules = GaugeMetricFamily("genesis_rules", "Rule versions stored by genesis, by status.", labels=["status"])
        counts = dict(Rule.objects.values_list("status").annotate(count=Count("id")))
        for status in RuleStatus.values:
            rules.add_metric([status], counts.get(status, 0))
        yield rules

        count, lag_sum, buckets = apply_lag_figures()
        lag = HistogramMetricFamily(
            "genesis_rule_publish_to_apply_seconds", "Seconds from publishing a rule version to genesis applying it."
        )
        lag.add_metric([], _histogram_buckets(buckets, count), lag_sum)
        yield lag

        figures = publish_figures(settings.GENESIS_ALERT_UNACKNOWLEDGED_SECONDS)
        yield GaugeMetricFamily(
            "genesis_rules_unacknowledged", "Published rule versions without a result.", value=figures.unacknowledged
        )
        yield GaugeMetricFamily(
            "genesis_rules_unacknowledged_overdue",
            "Published rule versions without a result for longer than GENESIS_ALERT_UNACKNOWLEDGED_SECONDS.",
            value=figures.unacknowledged_overdue,
        )
        yield GaugeMetricFamily(
            "genesis_rules_oldest_unacknowledged_age_seconds",
            "Age of the oldest published rule version without a result; 0 when there is none.",
            value=figures.oldest_unacknowledged_age_seconds or 0,
        )
        yield GaugeMetricFamily("genesis_rules_rejected", "Published rule versions genesis rejected.", value=figures.rejected_total)

        latest = MonitorSample.objects.order_by("-sampled_at").values_list("sampled_at", flat=True).first()
        yield GaugeMetricFamily(
            "genesis_monitor_last_sample_age_seconds",
            "Seconds since the monitor last ran; -1 if it never ran.",
            value=(timezone.now() - latest).total_seconds() if latest else -1,
        )

    def _alert_metrics(self):
        from .models import AlertIncident, IncidentStatus

        alerts = GaugeMetricFamily(
            "genesis_alerts_open", "Open alert incidents (1 each).", labels=["alert", "subject", "severity"]
        )
        for alert, subject, severity in AlertIncident.objects.filter(status=IncidentStatus.OPEN).values_list(
            "alert", "subject", "severity"
        ):
            alerts.add_metric([alert, subject, severity], 1)
        yield alerts


def render_metrics() -> bytes:
    """Return the current figures in Prometheus's text exposition format."""
    from prometheus_client import generate_latest

    # A registry per scrape: nothing is registered globally, so no figure is kept between scrapes.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector())
    return generate_latest(registry)
