"""Expiry of approvals: default lifetimes per agent and task type, and the scheduled sweep.

django-q2 runs ``expire_due_approvals`` every minute (the schedule is created by a migration),
and the Observer pages and admin expire what is due before they show it, so a stale approval is
never offered for a decision.
"""
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

EXPIRY_SCHEDULE_NAME = "observer.expire_approvals"
EXPIRY_TASK = "observer.expiry.expire_due_approvals"
EXPIRY_SCHEDULE_MINUTES = 1


def default_lifetime(agent_id: str, task_type: str) -> timedelta | None:
    """Return how long a request may wait when the agent set no ``expires_at``; None means forever.

    ``OBSERVER_LIFETIMES`` maps ``"agent:task_type"``, ``"agent:*"`` and ``"*:task_type"`` (checked
    in that order) to seconds; ``OBSERVER_DEFAULT_LIFETIME_SECONDS`` applies otherwise. 0 means no expiry.
    """
    lifetimes = settings.OBSERVER_LIFETIMES
    for key in (f"{agent_id}:{task_type}", f"{agent_id}:*", f"*:{task_type}"):
        if key in lifetimes:
            return _lifetime(lifetimes[key])
    return _lifetime(settings.OBSERVER_DEFAULT_LIFETIME_SECONDS)


def expires_at_for(agent_id: str, task_type: str, received_at: datetime) -> datetime | None:
    lifetime = default_lifetime(agent_id, task_type)
    return received_at + lifetime if lifetime is not None else None


def expire_due_approvals() -> int:
    """Close every pending approval past its deadline and tell its agent; the django-q2 task."""
    from .decisions import expire_due

    expired = expire_due()
    if expired:
        logger.info("observer.approvals_expired", extra={"count": expired})
    return expired


def _lifetime(seconds) -> timedelta | None:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ImproperlyConfigured(
            f"An Observer lifetime of {seconds!r} is invalid: OBSERVER_LIFETIMES values and "
            "OBSERVER_DEFAULT_LIFETIME_SECONDS must be numbers of seconds (0 for no expiry)."
        )
    return timedelta(seconds=seconds) if seconds > 0 else None
