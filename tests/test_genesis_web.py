"""The web side of genesis: /metrics content and access, the dashboard, and the rule admin."""
import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from genesis.models import Rule, RuleStatus
from genesis.monitor import run_monitor
from singularity.messaging.queues import DEAD_LETTERS, GENESIS_RULE_UPDATES
from singularity.rules.publisher import publish_rule
from tests.test_genesis_pipeline import GENESIS_CONSUMER, drain, rule_fields

pytestmark = pytest.mark.django_db

METRICS_URL = "/metrics"
TOKEN = "scrape-token-for-tests"


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("operator", password="x", is_staff=True, is_superuser=True)


@pytest.fixture
def metrics_token(settings):
    settings.GENESIS_METRICS_TOKEN = TOKEN
    return TOKEN


def sample_value(text: str, name: str, labels: str = "") -> float:
    """Return the value of one sample line of the exposition text, failing if it is absent."""
    pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" (\S+)"
    match = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    assert match, f"{name}{{{labels}}} not in /metrics output"
    return float(match.group(1))


# --- /metrics access -------------------------------------------------------------------------


def test_metrics_anonymous_rejected(client, metrics_token):
    response = client.get(METRICS_URL)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_metrics_wrong_token_rejected(client, metrics_token):
    response = client.get(METRICS_URL, headers={"Authorization": "Bearer not-the-token"})

    assert response.status_code == 401


def test_metrics_empty_token_setting_rejects_empty_bearer(client, settings):
    settings.GENESIS_METRICS_TOKEN = ""

    response = client.get(METRICS_URL, headers={"Authorization": "Bearer "})

    assert response.status_code == 401


def test_metrics_token_accepted(client, metrics_token, clean_queues):
    response = client.get(METRICS_URL, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")


def test_metrics_staff_accepted(client, staff, clean_queues):
    client.force_login(staff)

    assert client.get(METRICS_URL).status_code == 200


def test_metrics_non_staff_rejected(client, db):
    user = get_user_model().objects.create_user("agent", password="x")
    client.force_login(user)

    assert client.get(METRICS_URL).status_code == 401


# --- /metrics content ------------------------------------------------------------------------


def test_metrics_counts_queue_messages(client, staff, clean_queues):
    client.force_login(staff)
    before = client.get(METRICS_URL).content.decode()
    publish_rule(rule_id="no-print", **rule_fields())
    clean_queues.send(GENESIS_RULE_UPDATES, {"rule_id": "broken"})  # no version: dead-lettered
    drain(GENESIS_CONSUMER)

    text = client.get(METRICS_URL).content.decode()

    label = f'queue="{GENESIS_RULE_UPDATES}"'
    sent = sample_value(text, "singularity_queue_messages_sent_total", label)
    assert sent - sample_value(before, "singularity_queue_messages_sent_total", label) == 2
    processed = sample_value(text, "singularity_queue_messages_processed_total", label)
    assert processed - sample_value(before, "singularity_queue_messages_processed_total", label) == 1
    failed = sample_value(text, "singularity_queue_messages_failed_total", label)
    assert failed - sample_value(before, "singularity_queue_messages_failed_total", label) == 1
    assert sample_value(text, "singularity_queue_processing_latency_seconds_count", label) == processed
    assert sample_value(text, "singularity_queue_processing_latency_seconds_bucket", f'le="+Inf",{label}') == processed
    assert sample_value(text, "singularity_queue_depth", f'queue="{DEAD_LETTERS}"') == 1


def test_metrics_rule_figures(client, staff, clean_queues):
    publish_rule(rule_id="no-print", **rule_fields())
    publish_rule(rule_id="waiting", **rule_fields())
    clean_queues.purge(GENESIS_RULE_UPDATES)
    clean_queues.send(
        GENESIS_RULE_UPDATES, {**rule_fields(), "rule_id": "no-print", "version": 1, "published_at": "2025-01-01T00:00:00+00:00"}
    )
    drain(GENESIS_CONSUMER)
    client.force_login(staff)

    text = client.get(METRICS_URL).content.decode()

    assert sample_value(text, "genesis_rules", 'status="applied"') == 1
    assert sample_value(text, "genesis_rule_publish_to_apply_seconds_count") == 1
    assert sample_value(text, "genesis_rules_unacknowledged") == 2  # no result consumer ran
    assert sample_value(text, "genesis_rule_updates_lag_seconds") == 0  # the queue is empty


def test_metrics_shows_backlog_lag(client, staff, clean_queues):
    from tests.test_genesis_monitor import age_messages

    publish_rule(rule_id="no-print", **rule_fields())
    age_messages(GENESIS_RULE_UPDATES, 75)
    client.force_login(staff)

    text = client.get(METRICS_URL).content.decode()

    assert sample_value(text, "genesis_rule_updates_lag_seconds") == 75
    assert sample_value(text, "singularity_queue_oldest_message_age_seconds", f'queue="{GENESIS_RULE_UPDATES}"') == 75


def test_metrics_open_alerts(client, staff, clean_queues, settings):
    from tests.test_genesis_monitor import age_messages

    settings.GENESIS_ALERT_OLDEST_MESSAGE_SECONDS = 60
    clean_queues.send(GENESIS_RULE_UPDATES, {"n": 1})
    age_messages(GENESIS_RULE_UPDATES, 90)
    run_monitor()
    client.force_login(staff)

    text = client.get(METRICS_URL).content.decode()

    labels = f'alert="queue_backlog",severity="warning",subject="{GENESIS_RULE_UPDATES}"'
    assert sample_value(text, "genesis_alerts_open", labels) == 1
    assert sample_value(text, "genesis_monitor_last_sample_age_seconds") >= 0


# --- dashboard -------------------------------------------------------------------------------


def test_dashboard_requires_staff(client, db):
    response = client.get(reverse("genesis:dashboard"))

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_dashboard_shows_health(client, staff, clean_queues):
    publish_rule(rule_id="no-print", **rule_fields())
    run_monitor()
    client.force_login(staff)

    response = client.get(reverse("genesis:dashboard"))

    assert response.status_code == 200
    content = response.content.decode()
    assert GENESIS_RULE_UPDATES in content
    assert 'hx-trigger="every 10s"' in content
    assert "<polyline" in content
    assert "1 waiting for a result" in content


def test_dashboard_partial(client, staff, clean_queues):
    client.force_login(staff)

    response = client.get(reverse("genesis:dashboard_health"), headers={"HX-Request": "true"})

    assert response.status_code == 200
    content = response.content.decode()
    assert content.lstrip().startswith('<div id="genesis-health"')
    assert "<html" not in content


# --- rule admin ------------------------------------------------------------------------------


@pytest.fixture
def applied_rule(clean_queues):
    publish_rule(rule_id="no-print", **rule_fields())
    drain(GENESIS_CONSUMER)
    return Rule.objects.get(rule_id="no-print")


def test_rule_admin_lists_statistics(client, staff, applied_rule):
    client.force_login(staff)

    response = client.get(reverse("admin:genesis_rule_changelist"), {"confidence_band": "2"})

    assert response.status_code == 200
    content = response.content.decode()
    assert "python.lint" in content
    assert "Statistics of applied rules" in content


def test_rule_admin_shows_readable_pattern(client, staff, applied_rule):
    client.force_login(staff)

    response = client.get(reverse("admin:genesis_rule_change", args=[applied_rule.pk]))

    assert response.status_code == 200
    assert '&quot;match&quot;: &quot;print\\\\(&quot;' in response.content.decode()


def test_retire_asks_for_confirmation(client, staff, applied_rule):
    client.force_login(staff)

    response = client.post(
        reverse("admin:genesis_rule_changelist"), {"action": "retire_selected", "_selected_action": [applied_rule.pk]}
    )

    assert response.status_code == 200
    assert "Retire these 1 applied rule(s)?" in response.content.decode()
    assert Rule.objects.get(pk=applied_rule.pk).status == RuleStatus.APPLIED


def test_retire_after_confirmation(client, staff, applied_rule):
    client.force_login(staff)

    response = client.post(
        reverse("admin:genesis_rule_changelist"),
        {"action": "retire_selected", "_selected_action": [applied_rule.pk], "confirm": "yes"},
        follow=True,
    )

    rule = Rule.objects.get(pk=applied_rule.pk)
    assert rule.status == RuleStatus.RETIRED
    assert rule.retired_by == "operator"
    assert "Retired 1 rule(s)" in response.content.decode()


def test_retire_nothing_applied(client, staff, applied_rule):
    Rule.objects.filter(pk=applied_rule.pk).update(status=RuleStatus.SUPERSEDED)
    client.force_login(staff)

    response = client.post(
        reverse("admin:genesis_rule_changelist"),
        {"action": "retire_selected", "_selected_action": [applied_rule.pk]},
        follow=True,
    )

    assert "None of the selected rules is applied; nothing changed." in response.content.decode()
