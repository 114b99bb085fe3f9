"""The operator's scenario with a real worker process: stop the consumer, see the alert and the lag,
restart it, see the queue drain and the alert resolve, then repair purged messages with a backfill.
"""
import importlib
import re
import time
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.test import Client

from genesis.models import AlertIncident, AlertName, IncidentStatus, Rule
from genesis.monitor import run_monitor
from singularity.messaging.queues import GENESIS_RULE_UPDATES
from singularity.rules.models import PublishedRule, PublishStatus
from singularity.rules.publisher import publish_rule
from tests.conftest import wait_for
from tests.test_genesis_pipeline import rule_fields

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

TOKEN = "e2e-scrape-token"
RULE_CONSUMERS = "genesis_rule_updates,genesis_rule_updates_results"
DRAIN_TIMEOUT = 20  # seconds; generous so a slow machine does not fail the test


@pytest.fixture
def fast_alerts(settings):
    # One-second thresholds, so a stopped consumer trips the alerts within the test.
    settings.GENESIS_ALERT_OLDEST_MESSAGE_SECONDS = 1
    settings.GENESIS_ALERT_UNACKNOWLEDGED_SECONDS = 1
    settings.GENESIS_ALERT_CLEAR_RUNS = 2
    settings.GENESIS_ALERT_WEBHOOK_URL = ""
    settings.GENESIS_METRICS_TOKEN = TOKEN
    return settings


def scrape_lag() -> float:
    response = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    match = re.search(r"^genesis_rule_updates_lag_seconds (\S+)$", response.content.decode(), re.MULTILINE)
    assert match, "genesis_rule_updates_lag_seconds missing from /metrics"
    return float(match.group(1))


def open_alerts() -> set[tuple[str, str]]:
    return set(AlertIncident.objects.filter(status=IncidentStatus.OPEN).values_list("alert", "subject"))


def all_acknowledged() -> bool:
    return not PublishedRule.objects.filter(status=PublishStatus.PUBLISHED).exists()


def test_stopped_consumer_scenario(clean_queues, fast_alerts, start_worker):
    # The consumer is not running while rules are published.
    for number in range(3):
        publish_rule(rule_id=f"rule-{number}", **rule_fields())
    time.sleep(2.1)

    run_monitor()
    assert (AlertName.QUEUE_BACKLOG, GENESIS_RULE_UPDATES) in open_alerts()
    assert (AlertName.UNACKNOWLEDGED_RULES, "") in open_alerts()

    first_lag = scrape_lag()
    time.sleep(1.1)
    assert scrape_lag() > first_lag >= 2

    # Restarting the consumer drains the queue, and the alerts resolve after the clear runs.
    worker = start_worker("--only", RULE_CONSUMERS)
    wait_for(all_acknowledged, timeout=DRAIN_TIMEOUT)
    assert Rule.objects.count() == 3
    run_monitor()
    run_monitor()
    assert open_alerts() == set()
    assert scrape_lag() == 0

    # Messages purged by hand while the consumer is down are repaired by a backfill.
    worker.stop()
    publish_rule(rule_id="rule-3", **rule_fields())
    publish_rule(rule_id="rule-0", **rule_fields(confidence=0.7))
    assert clean_queues.purge(GENESIS_RULE_UPDATES) == 2
    stdout = StringIO()
    call_command("genesis_backfill", stdout=stdout, stderr=StringIO())
    assert "Sent 2 rule version(s)" in stdout.getvalue()

    start_worker("--only", RULE_CONSUMERS)
    wait_for(all_acknowledged, timeout=DRAIN_TIMEOUT)
    assert Rule.objects.count() == 5
    assert Rule.objects.get(rule_id="rule-0", status="applied").version == 2
    assert Rule.objects.filter(rule_id="rule-3").count() == 1


def test_monitor_schedule_created(db):
    migration = importlib.import_module("genesis.migrations.0003_monitor_schedule")
    Schedule = apps.get_model("django_q", "Schedule")

    migration.create(apps, None)
    migration.create(apps, None)

    schedule = Schedule.objects.get(name="genesis.monitor")
    assert schedule.func == "genesis.monitor.run_monitor"
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 1, -1)
