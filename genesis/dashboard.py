"""The data behind the admin dashboard: live queue health, open incidents, and the last hour's trend."""
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from singularity.messaging.queues import DEAD_LETTERS, GENESIS_RULE_UPDATES
from singularity.rules.status import publish_figures

from .models import AlertIncident, IncidentStatus, MonitorSample, QueueSample
from .monitor import dead_letters_by_source
from .rules import rule_statistics

TREND_WINDOW = timedelta(hours=1)
CHART_WIDTH = 600  # SVG user units
CHART_HEIGHT = 120


@dataclass(frozen=True)
class QueueHealth:
    """One queue's live figures and a verdict for the dashboard row."""

    name: str
    depth: int
    visible: int
    oldest_age_seconds: int | None
    total_sent: int
    dead_letters: int
    state: str  # "ok", "backlog" or "dead letters"


@dataclass(frozen=True)
class Chart:
    """An SVG polyline of one series over the trend window; ``points`` is the ``points`` attribute."""

    title: str
    unit: str
    points: str
    maximum: float
    latest: float | None
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


def queue_health() -> list[QueueHealth]:
    """Read every queue's figures now and judge them against the alert thresholds."""
    from singularity.models import Queue

    dead_letters = dead_letters_by_source()
    rows = []
    for metrics in Queue.objects.metrics_all():
        dead = dead_letters.get(metrics.queue_name, 0)
        oldest = metrics.oldest_msg_age_sec
        if dead > settings.GENESIS_ALERT_DEAD_LETTERS:
            state = "dead letters"
        elif metrics.queue_name != DEAD_LETTERS and (oldest or 0) > settings.GENESIS_ALERT_OLDEST_MESSAGE_SECONDS:
            state = "backlog"
        else:
            state = "ok"
        rows.append(
            QueueHealth(metrics.queue_name, metrics.queue_length, metrics.visible_length, oldest, metrics.total_messages, dead, state)
        )
    return rows


def build_chart(title: str, unit: str, series: list[tuple[datetime, float | None]], now: datetime) -> Chart:
    """Scale ``(time, value)`` pairs of the trend window into SVG coordinates; ``None`` values are skipped."""
    values = [(moment, value) for moment, value in series if value is not None]
    maximum = max((value for _, value in values), default=0.0)
    scale = maximum or 1.0  # A flat zero line instead of a division by zero.
    start = now - TREND_WINDOW
    window = TREND_WINDOW.total_seconds()
    points = []
    for moment, value in values:
        x = (moment - start).total_seconds() / window * CHART_WIDTH
        y = CHART_HEIGHT - value / scale * (CHART_HEIGHT - 10)  # 10 units of headroom above the peak
        points.append(f"{x:.1f},{y:.1f}")
    latest = values[-1][1] if values else None
    return Chart(title, unit, " ".join(points), maximum, latest)


def trend_charts(now: datetime) -> list[Chart]:
    """Build the depth and lag charts of ``genesis_rule_updates`` from the last hour's samples."""
    since = now - TREND_WINDOW
    samples = list(
        MonitorSample.objects.filter(sampled_at__gte=since).order_by("sampled_at").values_list(
            "sampled_at", "backlog_age_seconds", "apply_lag_seconds"
        )
    )
    depths = list(
        QueueSample.objects.filter(sample__sampled_at__gte=since, queue_name=GENESIS_RULE_UPDATES)
        .order_by("sample__sampled_at")
        .values_list("sample__sampled_at", "depth")
    )
    return [
        build_chart(f"{GENESIS_RULE_UPDATES} depth", "messages", depths, now),
        build_chart("Backlog age (oldest unapplied update)", "s", [(at, backlog) for at, backlog, _ in samples], now),
        build_chart("Publish-to-apply lag", "s", [(at, lag) for at, _, lag in samples], now),
    ]


def dashboard_context() -> dict:
    """Collect everything the dashboard and its refreshing partial show."""
    now = timezone.now()
    return {
        "now": now,
        "queues": queue_health(),
        "charts": trend_charts(now),
        "publisher": publish_figures(settings.GENESIS_ALERT_UNACKNOWLEDGED_SECONDS),
        "open_incidents": list(AlertIncident.objects.filter(status=IncidentStatus.OPEN).order_by("-opened_at")),
        "recent_incidents": list(AlertIncident.objects.filter(status=IncidentStatus.RESOLVED).order_by("-resolved_at")[:10]),
        "latest_sample": MonitorSample.objects.order_by("-sampled_at").first(),
        "statistics": rule_statistics(),
        "thresholds": {
            "oldest_message_seconds": settings.GENESIS_ALERT_OLDEST_MESSAGE_SECONDS,
            "unacknowledged_seconds": settings.GENESIS_ALERT_UNACKNOWLEDGED_SECONDS,
            "dead_letters": settings.GENESIS_ALERT_DEAD_LETTERS,
        },
    }
