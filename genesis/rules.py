"""Queries over the applied rules: ``get_rules``, statistics, and retiring rules."""
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Avg, Case, Count, QuerySet, Value, When
from django.utils import timezone

from singularity.rules.contracts import RuleType

from .models import Rule, RuleStatus

# Upper bounds of the confidence bands shown in the statistics; each band excludes its lower bound.
CONFIDENCE_BANDS = (("low (< 0.5)", 0.5), ("medium (0.5 to < 0.8)", 0.8), ("high (>= 0.8)", None))


def get_rules(
    namespace: str | None = None,
    min_confidence: float | None = None,
    rule_type: str | None = None,
    source: str | None = None,
) -> QuerySet:
    """Return the applied rules, one version per rule, filtered by the arguments that are not ``None``.

    Raises ``ValueError`` for a ``min_confidence`` outside 0..1 or an unknown ``rule_type``.
    """
    rules = Rule.objects.filter(status=RuleStatus.APPLIED)
    if namespace is not None:
        rules = rules.filter(namespace=namespace)
    if min_confidence is not None:
        if not 0 <= min_confidence <= 1:
            raise ValueError(f"min_confidence={min_confidence!r} is invalid: give a number from 0 to 1.")
        rules = rules.filter(confidence__gte=min_confidence)
    if rule_type is not None:
        if rule_type not in RuleType.values:
            raise ValueError(f"rule_type={rule_type!r} is unknown: use one of {', '.join(RuleType.values)}.")
        rules = rules.filter(rule_type=rule_type)
    if source is not None:
        rules = rules.filter(source_instance=source)
    return rules.order_by("namespace", "rule_id")


@dataclass(frozen=True)
class RuleStatistics:
    """Counts of applied rules by namespace, type, source and confidence band, plus totals by status."""

    by_namespace: list[dict]
    by_type: list[dict]
    by_source: list[dict]
    by_confidence: list[dict]
    by_status: dict[str, int]


def _confidence_band():
    whens = [When(confidence__lt=upper, then=Value(label)) for label, upper in CONFIDENCE_BANDS if upper is not None]
    return Case(*whens, default=Value(CONFIDENCE_BANDS[-1][0]))


def rule_statistics() -> RuleStatistics:
    """Count the applied rules by namespace, type, source and confidence band."""
    applied = Rule.objects.filter(status=RuleStatus.APPLIED)

    def grouped(field: str) -> list[dict]:
        return list(
            applied.values(field).annotate(count=Count("id"), mean_confidence=Avg("confidence")).order_by("-count", field)
        )

    bands = dict(applied.annotate(band=_confidence_band()).values_list("band").annotate(count=Count("id")))
    by_status = dict(Rule.objects.values_list("status").annotate(count=Count("id")))
    return RuleStatistics(
        by_namespace=grouped("namespace"),
        by_type=grouped("rule_type"),
        by_source=grouped("source_instance"),
        by_confidence=[{"band": label, "count": bands.get(label, 0)} for label, _ in CONFIDENCE_BANDS],
        by_status={status: by_status.get(status, 0) for status in RuleStatus.values},
    )


def retire_rules(rules: QuerySet, *, retired_by: str) -> int:
    """Retire the applied versions among ``rules``; return how many changed.

    A conditional update: versions already superseded or retired are left as they are.
    """
    now = timezone.now()
    with transaction.atomic():
        return rules.filter(status=RuleStatus.APPLIED).update(
            status=RuleStatus.RETIRED, retired_at=now, retired_by=retired_by, updated_at=now
        )
