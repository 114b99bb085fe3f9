"""Alert rules over a monitor sample: open an incident once, resolve it when the condition clears.

Thresholds come from settings (``GENESIS_ALERT_*``). Each opened or resolved incident is logged
and, when ``GENESIS_ALERT_WEBHOOK_URL`` is set, posted to it as JSON after the commit.
"""
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction

from singularity.messaging.queues import DEAD_LETTERS

from .models import AlertIncident, AlertName, IncidentStatus, MonitorSample, Severity, WebhookStatus

logger = logging.getLogger(__name__)

_LOG_LEVELS = {Severity.WARNING: logging.WARNING, Severity.ERROR: logging.ERROR}


@dataclass(frozen=True)
class Condition:
    """One alert rule checked against one sample: the value, its threshold, and whether it fires."""

    alert: AlertName
    subject: str
    severity: Severity
    value: float
    threshold: float
    message: str

    @property
    def firing(self) -> bool:
        return self.value > self.threshold

    @property
    def key(self) -> tuple[str, str]:
        return (self.alert.value, self.subject)


@dataclass
class Transitions:
    """Incidents a run opened and resolved."""

    opened: list[AlertIncident] = field(default_factory=list)
    resolved: list[AlertIncident] = field(default_factory=list)


def check_conditions(sample: MonitorSample) -> list[Condition]:
    """Check every alert rule against ``sample``; return all conditions, firing or not."""
    conditions = []
    backlog_limit = settings.GENESIS_ALERT_OLDEST_MESSAGE_SECONDS
    dead_letter_limit = settings.GENESIS_ALERT_DEAD_LETTERS
    queue_samples = list(sample.queues.all())
    for queue in queue_samples:
        if queue.queue_name == DEAD_LETTERS:
            continue  # Dead letters wait for an operator by design; their own alert covers them.
        age = queue.oldest_age_seconds or 0
        conditions.append(
            Condition(
                AlertName.QUEUE_BACKLOG,
                queue.queue_name,
                Severity.WARNING,
                age,
                backlog_limit,
                f"The oldest message in {queue.queue_name} is {age:.0f} s old (threshold {backlog_limit} s, "
                f"{queue.depth} waiting). Check that its consumer is running.",
            )
        )
        conditions.append(
            Condition(
                AlertName.DEAD_LETTERS,
                queue.queue_name,
                Severity.ERROR,
                queue.dead_letters,
                dead_letter_limit,
                f"{queue.dead_letters} message(s) from {queue.queue_name} are in {DEAD_LETTERS} "
                f"(threshold {dead_letter_limit}). Read them with 'manage.py queues dead-letters'.",
            )
        )
    overdue_limit = settings.GENESIS_ALERT_UNACKNOWLEDGED_SECONDS
    conditions.append(
        Condition(
            AlertName.UNACKNOWLEDGED_RULES,
            "",
            Severity.WARNING,
            sample.unacknowledged_overdue,
            0,
            f"{sample.unacknowledged_overdue} published rule version(s) have had no result for more than "
            f"{overdue_limit} s. Check the genesis consumer, then run 'manage.py genesis_backfill'.",
        )
    )
    return conditions


def sample_figures(sample: MonitorSample) -> dict:
    """Return the sample's figures as JSON-ready values, stored with an incident that opens."""
    return {
        "sampled_at": sample.sampled_at.isoformat(),
        "backlog_age_seconds": sample.backlog_age_seconds,
        "apply_lag_seconds": sample.apply_lag_seconds,
        "unacknowledged": sample.unacknowledged,
        "unacknowledged_overdue": sample.unacknowledged_overdue,
        "apply_failures": sample.apply_failures,
        "queues": {
            queue.queue_name: {
                "depth": queue.depth,
                "visible_depth": queue.visible_depth,
                "oldest_age_seconds": queue.oldest_age_seconds,
                "dead_letters": queue.dead_letters,
            }
            for queue in sample.queues.all()
        },
    }


def evaluate_alerts(sample: MonitorSample) -> Transitions:
    """Open, update or resolve incidents for ``sample``; log and notify each change after commit."""
    conditions = {condition.key: condition for condition in check_conditions(sample)}
    transitions = Transitions()
    with transaction.atomic():
        open_incidents = {
            (incident.alert, incident.subject): incident
            for incident in AlertIncident.objects.select_for_update().filter(status=IncidentStatus.OPEN)
        }
        for key, condition in conditions.items():
            incident = open_incidents.pop(key, None)
            if condition.firing:
                if incident is None:
                    opened = _open(condition, sample)
                    if opened is not None:
                        transitions.opened.append(opened)
                else:
                    _still_firing(incident, condition, sample)
            elif incident is not None and _clear(incident, condition.value, sample):
                transitions.resolved.append(incident)
        # An open incident without a condition this run (its queue was dropped, say) counts as clear.
        for incident in open_incidents.values():
            if _clear(incident, 0, sample):
                transitions.resolved.append(incident)
    for incident in transitions.opened:
        _announce(incident, "opened")
    for incident in transitions.resolved:
        _announce(incident, "resolved")
    return transitions


def _open(condition: Condition, sample: MonitorSample) -> AlertIncident | None:
    try:
        with transaction.atomic():
            return AlertIncident.objects.create(
                alert=condition.alert,
                subject=condition.subject,
                severity=condition.severity,
                message=condition.message,
                threshold=condition.threshold,
                trigger_value=condition.value,
                trigger_values=sample_figures(sample),
                last_value=condition.value,
                peak_value=condition.value,
                opened_at=sample.sampled_at,
                last_seen_at=sample.sampled_at,
            )
    except IntegrityError:
        # A concurrent monitor run opened this incident first; it announces it.
        return None


def _still_firing(incident: AlertIncident, condition: Condition, sample: MonitorSample) -> None:
    incident.last_value = condition.value
    incident.peak_value = max(incident.peak_value, condition.value)
    incident.last_seen_at = sample.sampled_at
    incident.clear_runs = 0
    incident.save(update_fields=["last_value", "peak_value", "last_seen_at", "clear_runs"])


def _clear(incident: AlertIncident, value: float, sample: MonitorSample) -> bool:
    """Count one clear run; resolve and return True once enough runs in a row were clear."""
    incident.last_value = value
    incident.clear_runs += 1
    fields = ["last_value", "clear_runs"]
    if incident.clear_runs >= settings.GENESIS_ALERT_CLEAR_RUNS:
        incident.status = IncidentStatus.RESOLVED
        incident.resolved_at = sample.sampled_at
        fields += ["status", "resolved_at"]
    incident.save(update_fields=fields)
    return incident.status == IncidentStatus.RESOLVED


def _announce(incident: AlertIncident, event: str) -> None:
    ids = {
        "incident_id": incident.pk,
        "alert": incident.alert,
        "subject": incident.subject,
        "value": incident.last_value if event == "resolved" else incident.trigger_value,
        "threshold": incident.threshold,
    }
    if event == "opened":
        logger.log(_LOG_LEVELS[Severity(incident.severity)], "genesis.alert_opened", extra={**ids, "detail": incident.message})
    else:
        logger.info("genesis.alert_resolved", extra=ids)
    status, error = post_webhook(webhook_payload(incident, event))
    field_name = "opened_webhook" if event == "opened" else "resolved_webhook"
    setattr(incident, field_name, status)
    incident.webhook_error = error
    AlertIncident.objects.filter(pk=incident.pk).update(**{field_name: status, "webhook_error": error})


def webhook_payload(incident: AlertIncident, event: str) -> dict:
    """Build the JSON body posted to the webhook when ``incident`` opens or resolves."""
    return {
        "event": event,
        "incident_id": incident.pk,
        "alert": incident.alert,
        "subject": incident.subject,
        "severity": incident.severity,
        "message": incident.message,
        "threshold": incident.threshold,
        "trigger_value": incident.trigger_value,
        "last_value": incident.last_value,
        "peak_value": incident.peak_value,
        "opened_at": incident.opened_at.isoformat(),
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
        "values": incident.trigger_values,
    }


def post_webhook(payload: dict) -> tuple[str, str]:
    """POST ``payload`` to ``GENESIS_ALERT_WEBHOOK_URL``; return the ``WebhookStatus`` and any error text.

    NOTE: a failed post is logged and recorded on the incident but not retried.
    """
    url = settings.GENESIS_ALERT_WEBHOOK_URL
    if not url:
        return WebhookStatus.DISABLED, ""
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        # The URL itself is not echoed: webhook URLs often embed a secret token.
        error = f"GENESIS_ALERT_WEBHOOK_URL has scheme {scheme!r}: use an http:// or https:// URL, or leave it empty."
        logger.error("genesis.alert_webhook_failed", extra={"incident_id": payload["incident_id"], "error": error})
        return WebhookStatus.FAILED, error
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "singularity-genesis-alerts"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.GENESIS_ALERT_WEBHOOK_TIMEOUT_SECONDS) as response:
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        error = f"POST to the alert webhook failed: {exc}"
        logger.error("genesis.alert_webhook_failed", extra={"incident_id": payload["incident_id"], "error": str(exc)})
        return WebhookStatus.FAILED, error
    return WebhookStatus.SENT, ""
