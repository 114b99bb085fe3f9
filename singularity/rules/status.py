"""Figures of the publishing side that the genesis monitor samples and alerts on."""
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Min, Q
from django.utils import timezone

from .models import PublishedRule, PublishStatus


@dataclass(frozen=True)
class PublishFigures:
    """Counts of published rule versions by outcome; ages are in seconds."""

    published_total: int
    applied_total: int
    rejected_total: int
    unacknowledged: int
    unacknowledged_overdue: int  # unacknowledged for longer than the threshold given
    oldest_unacknowledged_age_seconds: float | None


def publish_figures(overdue_after_seconds: float) -> PublishFigures:
    """Count rule versions by status, and those waiting for a result longer than ``overdue_after_seconds``."""
    now = timezone.now()
    overdue_before = now - timedelta(seconds=overdue_after_seconds)
    waiting = Q(status=PublishStatus.PUBLISHED)
    figures = PublishedRule.objects.aggregate(
        published_total=Count("id"),
        applied_total=Count("id", filter=Q(status=PublishStatus.APPLIED)),
        rejected_total=Count("id", filter=Q(status=PublishStatus.REJECTED)),
        unacknowledged=Count("id", filter=waiting),
        unacknowledged_overdue=Count("id", filter=waiting & Q(published_at__lt=overdue_before)),
        oldest_published_at=Min("published_at", filter=waiting),
    )
    oldest = figures.pop("oldest_published_at")
    return PublishFigures(
        **figures,
        oldest_unacknowledged_age_seconds=(now - oldest).total_seconds() if oldest else None,
    )
