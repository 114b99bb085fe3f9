"""The genesis monitor and its alerts: figures against known queue contents, incidents, webhook."""
import json
import logging
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection
from django.utils import timezone

from genesis.alerts import evaluate_alerts
from genesis.models import AlertIncident, AlertName, IncidentStatus, MonitorSample, WebhookStatus
from genesis.monitor import prune_samples, run_monitor, take_sample
from singularity.messaging.queues import AI_REQUESTS, DEAD_LETTERS, GENESIS_RULE_UPDATES
from singularity.rules.models import PublishedRule
from singularity.rules.publisher import publish_rule
from tests.test_genesis_pipeline import rule_fields

pytestmark = pytest.mark.django_db

ALERTS_LOGGER = "genesis.alerts"


def age_messages(queue: str, seconds: int) -> None:
    """Make every message of ``queue`` look ``seconds`` old, and visible, to pgmq.

    pgmq's metrics compare with ``now()``, the start of the test's transaction, so a message sent
    during the test would otherwise count as not yet visible.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE pgmq.q_{queue} SET enqueued_at = now() - make_interval(secs => %s), vt = now() - make_interval(secs => %s)",
            [seconds, seconds],
        )


def dead_letter(queues, source: str) -> None:
    queues.send(DEAD_LETTERS, {"queue": source, "msg_id": 1, "reason": "invalid_body", "error": "test", "body": {}})


def backlog_incidents():
    return AlertIncident.objects.filter(alert=AlertName.QUEUE_BACKLOG, subject=GENESIS_RULE_UPDATES)


def opened_logs(caplog) -> list:
    return [record for record in caplog.records if record.getMessage() == "genesis.alert_opened"]


@pytest.fixture
def thresholds(settings):
    settings.GENESIS_ALERT_OLDEST_MESSAGE_SECONDS = 60
    settings.GENESIS_ALERT_UNACKNOWLEDGED_SECONDS = 300
    settings.GENESIS_ALERT_DEAD_LETTERS = 0
    settings.GENESIS_ALERT_CLEAR_RUNS = 2
    settings.GENESIS_ALERT_WEBHOOK_URL = ""
    return settings


# --- figures ---------------------------------------------------------------------------------


def test_sample_queue_figures(clean_queues, thresholds):
    clean_queues.send_batch(GENESIS_RULE_UPDATES, [{"n": 1}, {"n": 2}, {"n": 3}])
    age_messages(GENESIS_RULE_UPDATES, 120)
    clean_queues.read(GENESIS_RULE_UPDATES, vt=60, qty=1)  # one hidden, two visible
    dead_letter(clean_queues, GENESIS_RULE_UPDATES)
    dead_letter(clean_queues, AI_REQUESTS)

    sample = take_sample()

    queue = sample.queues.get(queue_name=GENESIS_RULE_UPDATES)
    assert (queue.depth, queue.visible_depth) == (3, 2)
    assert queue.oldest_age_seconds == 120
    assert queue.dead_letters == 1
    assert sample.queues.get(queue_name=AI_REQUESTS).dead_letters == 1
    assert sample.queues.get(queue_name=DEAD_LETTERS).depth == 2
    assert sample.backlog_age_seconds == 120


def test_sample_covers_every_queue(clean_queues, thresholds):
    sample = take_sample()

    assert set(clean_queues.queue_names()) == set(sample.queues.values_list("queue_name", flat=True))


def test_sample_apply_failures(clean_queues, thresholds):
    clean_queues.send_batch(GENESIS_RULE_UPDATES, [{"n": 1}, {"n": 2}])
    clean_queues.read(GENESIS_RULE_UPDATES, vt=0, qty=2)
    clean_queues.read(GENESIS_RULE_UPDATES, vt=0, qty=1)  # one message read twice: it failed once
    dead_letter(clean_queues, GENESIS_RULE_UPDATES)

    assert take_sample().apply_failures == 2


def test_sample_unacknowledged_rules(clean_queues, thresholds):
    publish_rule(rule_id="old", **rule_fields())
    publish_rule(rule_id="new", **rule_fields())
    PublishedRule.objects.filter(rule_id="old").update(published_at=timezone.now() - timedelta(seconds=301))

    sample = take_sample()

    assert sample.unacknowledged == 2
    assert sample.unacknowledged_overdue == 1


def test_sample_apply_lag(clean_queues, thresholds):
    from tests.test_genesis_pipeline import GENESIS_CONSUMER, drain

    publish_rule(rule_id="no-print", **rule_fields())
    PublishedRule.objects.update(published_at=timezone.now() - timedelta(seconds=30))
    # The message carries the publish time, so rewrite it the way an old publish would have sent it.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE pgmq.q_{GENESIS_RULE_UPDATES} SET message = jsonb_set(message, '{{published_at}}', to_jsonb(%s::text))",
            [(timezone.now() - timedelta(seconds=30)).isoformat()],
        )
    drain(GENESIS_CONSUMER)

    sample = take_sample()

    assert sample.applied_since_previous == 1
    assert 30 <= sample.apply_lag_seconds < 40


def test_prune_keeps_recent_samples(clean_queues, thresholds):
    thresholds.GENESIS_SAMPLE_RETENTION_DAYS = 7
    old = take_sample()
    MonitorSample.objects.filter(pk=old.pk).update(sampled_at=timezone.now() - timedelta(days=8))
    recent = take_sample()

    assert prune_samples() == 1
    assert list(MonitorSample.objects.values_list("pk", flat=True)) == [recent.pk]


# --- alerts ----------------------------------------------------------------------------------


def test_backlog_alert_opens_once(clean_queues, thresholds, caplog):
    clean_queues.send(GENESIS_RULE_UPDATES, {"n": 1})
    age_messages(GENESIS_RULE_UPDATES, 90)

    with caplog.at_level(logging.WARNING, logger=ALERTS_LOGGER):
        run_monitor()
        run_monitor()

    incident = backlog_incidents().get()
    assert incident.status == IncidentStatus.OPEN
    assert incident.trigger_value == 90
    assert incident.threshold == 60
    assert incident.trigger_values["queues"][GENESIS_RULE_UPDATES]["depth"] == 1
    assert [record.subject for record in opened_logs(caplog)] == [GENESIS_RULE_UPDATES]
    assert opened_logs(caplog)[0].levelno == logging.WARNING


def test_backlog_alert_resolves_after_clear_runs(clean_queues, thresholds, caplog):
    clean_queues.send(GENESIS_RULE_UPDATES, {"n": 1})
    age_messages(GENESIS_RULE_UPDATES, 90)
    run_monitor()
    clean_queues.purge(GENESIS_RULE_UPDATES)

    first = run_monitor()
    assert backlog_incidents().get().status == IncidentStatus.OPEN
    with caplog.at_level(logging.INFO, logger=ALERTS_LOGGER):
        second = run_monitor()

    incident = backlog_incidents().get()
    assert incident.status == IncidentStatus.RESOLVED
    assert incident.resolved_at is not None
    assert first["resolved"] == []
    assert second["resolved"] == [incident.pk]
    assert [record.getMessage() for record in caplog.records].count("genesis.alert_resolved") == 1


def test_alert_does_not_flap(clean_queues, thresholds, caplog):
    clean_queues.send(GENESIS_RULE_UPDATES, {"n": 1})
    age_messages(GENESIS_RULE_UPDATES, 90)
    with caplog.at_level(logging.WARNING, logger=ALERTS_LOGGER):
        run_monitor()
        clean_queues.purge(GENESIS_RULE_UPDATES)
        run_monitor()  # clear once: not enough to resolve
        clean_queues.send(GENESIS_RULE_UPDATES, {"n": 2})
        age_messages(GENESIS_RULE_UPDATES, 95)
        run_monitor()

    incident = backlog_incidents().get()
    assert incident.status == IncidentStatus.OPEN
    assert incident.clear_runs == 0
    assert incident.peak_value == 95
    assert len(opened_logs(caplog)) == 1


def test_alert_reopens_as_new_incident(clean_queues, thresholds):
    thresholds.GENESIS_ALERT_CLEAR_RUNS = 1
    clean_queues.send(GENESIS_RULE_UPDATES, {"n": 1})
    age_messages(GENESIS_RULE_UPDATES, 90)
    run_monitor()
    clean_queues.purge(GENESIS_RULE_UPDATES)
    run_monitor()
    clean_queues.send(GENESIS_RULE_UPDATES, {"n": 2})
    age_messages(GENESIS_RULE_UPDATES, 90)

    run_monitor()

    statuses = list(backlog_incidents().order_by("opened_at").values_list("status", flat=True))
    assert statuses == [IncidentStatus.RESOLVED, IncidentStatus.OPEN]


def test_dead_letter_alert_is_error(clean_queues, thresholds, caplog):
    dead_letter(clean_queues, GENESIS_RULE_UPDATES)

    with caplog.at_level(logging.WARNING, logger=ALERTS_LOGGER):
        run_monitor()

    incident = AlertIncident.objects.get(alert=AlertName.DEAD_LETTERS)
    assert incident.subject == GENESIS_RULE_UPDATES
    assert incident.trigger_value == 1
    [record] = opened_logs(caplog)
    assert record.levelno == logging.ERROR


def test_unacknowledged_alert(clean_queues, thresholds):
    publish_rule(rule_id="lost", **rule_fields())
    clean_queues.purge(GENESIS_RULE_UPDATES)
    PublishedRule.objects.update(published_at=timezone.now() - timedelta(minutes=10))

    run_monitor()

    incident = AlertIncident.objects.get(alert=AlertName.UNACKNOWLEDGED_RULES)
    assert incident.trigger_value == 1
    assert "genesis_backfill" in incident.message


def test_quiet_system_opens_nothing(clean_queues, thresholds):
    run_monitor()

    assert not AlertIncident.objects.exists()


# --- webhook ---------------------------------------------------------------------------------


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records the JSON bodies posted to it."""

    def __init__(self, status: int = 200):
        self.bodies: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, format, *args):
                pass  # keep the test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_webhook_receives_open_and_resolve(clean_queues, thresholds):
    thresholds.GENESIS_ALERT_CLEAR_RUNS = 1
    clean_queues.send(GENESIS_RULE_UPDATES, {"n": 1})
    age_messages(GENESIS_RULE_UPDATES, 90)
    with WebhookReceiver() as receiver:
        thresholds.GENESIS_ALERT_WEBHOOK_URL = receiver.url
        run_monitor()
        run_monitor()  # still firing: no second post
        clean_queues.purge(GENESIS_RULE_UPDATES)
        run_monitor()

    assert [(body["event"], body["alert"], body["subject"]) for body in receiver.bodies] == [
        ("opened", "queue_backlog", GENESIS_RULE_UPDATES),
        ("resolved", "queue_backlog", GENESIS_RULE_UPDATES),
    ]
    assert receiver.bodies[0]["trigger_value"] == 90
    assert receiver.bodies[0]["severity"] == "warning"
    assert receiver.bodies[1]["resolved_at"] is not None
    incident = backlog_incidents().get()
    assert (incident.opened_webhook, incident.resolved_webhook) == (WebhookStatus.SENT, WebhookStatus.SENT)


def test_webhook_failure_recorded(clean_queues, thresholds, caplog):
    clean_queues.send(GENESIS_RULE_UPDATES, {"n": 1})
    age_messages(GENESIS_RULE_UPDATES, 90)
    with WebhookReceiver(status=500) as receiver, caplog.at_level(logging.ERROR, logger=ALERTS_LOGGER):
        thresholds.GENESIS_ALERT_WEBHOOK_URL = receiver.url
        run_monitor()

    incident = backlog_incidents().get()
    assert incident.opened_webhook == WebhookStatus.FAILED
    assert "500" in incident.webhook_error
    assert [record.getMessage() for record in caplog.records] == ["genesis.alert_webhook_failed"]


def test_webhook_disabled_by_default(clean_queues, thresholds):
    clean_queues.send(GENESIS_RULE_UPDATES, {"n": 1})
    age_messages(GENESIS_RULE_UPDATES, 90)

    run_monitor()

    assert backlog_incidents().get().opened_webhook == WebhookStatus.DISABLED


def test_webhook_rejects_other_schemes(clean_queues, thresholds):
    thresholds.GENESIS_ALERT_WEBHOOK_URL = "file:///tmp/alerts"
    clean_queues.send(GENESIS_RULE_UPDATES, {"n": 1})
    age_messages(GENESIS_RULE_UPDATES, 90)

    run_monitor()

    incident = backlog_incidents().get()
    assert incident.opened_webhook == WebhookStatus.FAILED
    assert "scheme 'file'" in incident.webhook_error


def test_evaluate_without_queue_resolves(clean_queues, thresholds):
    thresholds.GENESIS_ALERT_CLEAR_RUNS = 1
    clean_queues.send(GENESIS_RULE_UPDATES, {"n": 1})
    age_messages(GENESIS_RULE_UPDATES, 90)
    run_monitor()
    sample = take_sample()
    sample.queues.filter(queue_name=GENESIS_RULE_UPDATES).delete()  # as if the queue had been dropped

    transitions = evaluate_alerts(sample)

    assert [incident.subject for incident in transitions.resolved] == [GENESIS_RULE_UPDATES]
