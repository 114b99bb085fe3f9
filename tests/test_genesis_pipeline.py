"""The rule update path in this process: publish, apply by (rule_id, version), send and record the result.

Every test runs inside its own transaction; the runtime's ``atomic`` blocks become savepoints.
"""
import logging

import pytest

from genesis.models import Rule, RuleStatus
from genesis.rules import get_rules, retire_rules, rule_statistics
from singularity.messaging.notifications import NotificationHub
from singularity.messaging.pgmq import QueueNotFound
from singularity.messaging.queues import DEAD_LETTERS, GENESIS_RULE_UPDATES, GENESIS_RULE_UPDATES_RESULTS
from singularity.messaging.registry import registered_consumers
from singularity.messaging.runtime import ConsumerWorker
from singularity.rules.models import PublishedRule, PublishStatus
from singularity.rules.publisher import InvalidRule, RuleVersionExists, publish_rule, rule_update_body

pytestmark = pytest.mark.django_db

GENESIS_CONSUMER = "genesis_rule_updates"
RESULTS_CONSUMER = "genesis_rule_updates_results"


def rule_fields(**overrides) -> dict:
    fields = {
        "namespace": "python.lint",
        "rule_type": "linting",
        "pattern": {"kind": "regex", "match": r"print\("},
        "action": {"type": "warn", "message": "use logging"},
        "confidence": 0.9,
        "source_instance": "agent-a",
    }
    return {**fields, **overrides}


def drain(consumer_name: str) -> int:
    """Handle every visible message of one registered consumer in this process; return how many."""
    worker = ConsumerWorker(registered_consumers()[consumer_name], NotificationHub())
    handled = 0
    while count := worker.run_once():
        handled += count
    return handled


def read_all(queues, queue: str) -> list:
    return queues.read(queue, vt=0, qty=100)


def apply_and_answer() -> None:
    drain(GENESIS_CONSUMER)
    drain(RESULTS_CONSUMER)


# --- consumer table --------------------------------------------------------------------------


def test_consumers_registered():
    consumers = registered_consumers()
    assert consumers[GENESIS_CONSUMER].queue == GENESIS_RULE_UPDATES
    assert consumers[RESULTS_CONSUMER].queue == GENESIS_RULE_UPDATES_RESULTS


# --- publishing ------------------------------------------------------------------------------


def test_publish_stores_and_sends(clean_queues):
    rule = publish_rule(rule_id="no-print", **rule_fields())

    stored = PublishedRule.objects.get(rule_id="no-print")
    assert stored.status == PublishStatus.PUBLISHED
    assert stored.version == 1
    messages = read_all(clean_queues, GENESIS_RULE_UPDATES)
    assert [message.msg_id for message in messages] == [rule.msg_id]
    assert messages[0].body == rule_update_body(stored)


def test_publish_failed_send_rolls_back(clean_queues):
    # Dropping the queue makes the send fail for real. The drop is part of the test's transaction,
    # so the rollback at the end of the test brings the queue back.
    clean_queues.drop(GENESIS_RULE_UPDATES)

    with pytest.raises(QueueNotFound):
        publish_rule(rule_id="no-print", **rule_fields())

    assert not PublishedRule.objects.filter(rule_id="no-print").exists()


def test_publish_failed_insert_sends_nothing(clean_queues):
    publish_rule(rule_id="no-print", version=1, **rule_fields())

    with pytest.raises(RuleVersionExists, match="version 1 was already published"):
        publish_rule(rule_id="no-print", version=1, **rule_fields(confidence=0.5))

    assert len(read_all(clean_queues, GENESIS_RULE_UPDATES)) == 1
    assert PublishedRule.objects.get(rule_id="no-print").confidence == 0.9


def test_publish_takes_next_version(clean_queues):
    publish_rule(rule_id="no-print", **rule_fields())
    second = publish_rule(rule_id="no-print", **rule_fields())

    assert second.version == 2


def test_publish_rejects_invalid_rule(clean_queues):
    with pytest.raises(InvalidRule, match="confidence' must be between 0 and 1"):
        publish_rule(rule_id="no-print", **rule_fields(confidence=1.5))

    assert not PublishedRule.objects.exists()
    assert read_all(clean_queues, GENESIS_RULE_UPDATES) == []


# --- applying --------------------------------------------------------------------------------


def test_apply_stores_rule(clean_queues):
    publish_rule(rule_id="no-print", **rule_fields())

    drain(GENESIS_CONSUMER)

    rule = Rule.objects.get(rule_id="no-print")
    assert rule.status == RuleStatus.APPLIED
    assert rule.pattern == rule_fields()["pattern"]
    assert rule.publish_to_apply_seconds >= 0
    results = read_all(clean_queues, GENESIS_RULE_UPDATES_RESULTS)
    assert [result.body["status"] for result in results] == ["applied"]
    assert results[0].body["applied_version"] == 1


def test_apply_twice_changes_nothing(clean_queues):
    rule = publish_rule(rule_id="no-print", **rule_fields())
    drain(GENESIS_CONSUMER)
    applied = Rule.objects.get(rule_id="no-print")

    clean_queues.send(GENESIS_RULE_UPDATES, rule_update_body(rule))
    drain(GENESIS_CONSUMER)

    assert Rule.objects.filter(rule_id="no-print").count() == 1
    assert Rule.objects.get(rule_id="no-print").updated_at == applied.updated_at
    statuses = [result.body["status"] for result in read_all(clean_queues, GENESIS_RULE_UPDATES_RESULTS)]
    assert statuses == ["applied", "applied"]


def test_newer_version_supersedes(clean_queues):
    publish_rule(rule_id="no-print", **rule_fields(confidence=0.6))
    publish_rule(rule_id="no-print", **rule_fields(confidence=0.8))

    drain(GENESIS_CONSUMER)

    versions = dict(Rule.objects.filter(rule_id="no-print").values_list("version", "status"))
    assert versions == {1: RuleStatus.SUPERSEDED, 2: RuleStatus.APPLIED}


def test_older_version_changes_nothing(clean_queues):
    first = publish_rule(rule_id="no-print", **rule_fields(confidence=0.6))
    publish_rule(rule_id="no-print", **rule_fields(confidence=0.8))
    clean_queues.purge(GENESIS_RULE_UPDATES)
    second_body = {**rule_update_body(first), "version": 2, "confidence": 0.8}
    clean_queues.send(GENESIS_RULE_UPDATES, second_body)
    clean_queues.send(GENESIS_RULE_UPDATES, rule_update_body(first))

    drain(GENESIS_CONSUMER)

    assert list(Rule.objects.filter(rule_id="no-print").values_list("version", "status")) == [(2, RuleStatus.APPLIED)]
    results = [result.body for result in read_all(clean_queues, GENESIS_RULE_UPDATES_RESULTS)]
    assert [(result["version"], result["status"]) for result in results] == [(2, "applied"), (1, "rejected")]
    assert "older than stored version 2" in results[1]["error"]


@pytest.mark.parametrize(
    "change, error",
    [
        ({"confidence": 1.5}, "'confidence' must be between 0 and 1"),
        ({"confidence": "high"}, "'confidence' must be integer or number"),
        ({"rule_type": "style"}, "'rule_type' has unknown value 'style'"),
        ({"pattern": {}}, "'pattern' must be a non-empty object"),
        ({"action": {"message": "no type"}}, "'action' must have a non-empty string 'type'"),
        ({"namespace": None}, "'namespace' must not be null"),
        ({"published_at": "yesterday"}, "'published_at' must be an ISO 8601"),
    ],
)
def test_invalid_body_dead_lettered(clean_queues, change, error):
    rule = publish_rule(rule_id="no-print", **rule_fields())
    clean_queues.purge(GENESIS_RULE_UPDATES)
    clean_queues.send(GENESIS_RULE_UPDATES, {**rule_update_body(rule), **change})

    drain(GENESIS_CONSUMER)

    assert not Rule.objects.exists()
    dead = read_all(clean_queues, DEAD_LETTERS)
    assert len(dead) == 1
    assert dead[0].body["reason"] == "invalid_body"
    assert error in dead[0].body["error"]
    results = read_all(clean_queues, GENESIS_RULE_UPDATES_RESULTS)
    assert results[0].body["status"] == "rejected"
    assert error in results[0].body["error"]


def test_body_without_version_dead_lettered(clean_queues):
    clean_queues.send(GENESIS_RULE_UPDATES, {"rule_id": "no-print", **rule_fields()})

    drain(GENESIS_CONSUMER)

    dead = read_all(clean_queues, DEAD_LETTERS)
    assert "missing required field 'version'" in dead[0].body["error"]
    assert read_all(clean_queues, GENESIS_RULE_UPDATES_RESULTS) == []


def test_apply_logs_rule_ids(clean_queues, caplog):
    publish_rule(rule_id="no-print", **rule_fields())

    with caplog.at_level(logging.INFO, logger="genesis.consumers"):
        drain(GENESIS_CONSUMER)

    [record] = [record for record in caplog.records if record.getMessage() == "genesis.rule_applied"]
    assert (record.rule_id, record.version, record.queue) == ("no-print", 1, GENESIS_RULE_UPDATES)


# --- recording results -----------------------------------------------------------------------


def test_applied_result_recorded(clean_queues):
    publish_rule(rule_id="no-print", **rule_fields())

    apply_and_answer()

    published = PublishedRule.objects.get(rule_id="no-print")
    assert published.status == PublishStatus.APPLIED
    assert published.acknowledged_at is not None
    assert published.last_error == ""


def test_rejected_result_recorded(clean_queues):
    publish_rule(rule_id="no-print", **rule_fields(confidence=0.6))
    publish_rule(rule_id="no-print", **rule_fields(confidence=0.8))
    [first, second] = read_all(clean_queues, GENESIS_RULE_UPDATES)
    # Deliver version 2 before version 1.
    clean_queues.purge(GENESIS_RULE_UPDATES)
    clean_queues.send(GENESIS_RULE_UPDATES, second.body)
    clean_queues.send(GENESIS_RULE_UPDATES, first.body)

    apply_and_answer()

    stale = PublishedRule.objects.get(rule_id="no-print", version=1)
    assert stale.status == PublishStatus.REJECTED
    assert "older than stored version 2" in stale.last_error
    assert PublishedRule.objects.get(rule_id="no-print", version=2).status == PublishStatus.APPLIED


def test_second_result_ignored(clean_queues):
    publish_rule(rule_id="no-print", **rule_fields())
    apply_and_answer()
    clean_queues.send(
        GENESIS_RULE_UPDATES_RESULTS, {"rule_id": "no-print", "version": 1, "status": "rejected", "error": "late"}
    )

    drain(RESULTS_CONSUMER)

    assert PublishedRule.objects.get(rule_id="no-print").status == PublishStatus.APPLIED


def test_unknown_rule_result_dead_lettered(clean_queues):
    clean_queues.send(GENESIS_RULE_UPDATES_RESULTS, {"rule_id": "ghost", "version": 3, "status": "applied"})

    drain(RESULTS_CONSUMER)

    [dead] = read_all(clean_queues, DEAD_LETTERS)
    assert dead.body["reason"] == "unknown_rule"
    assert "'ghost'" in dead.body["error"]


# --- queries ---------------------------------------------------------------------------------


@pytest.fixture
def applied_rules(clean_queues):
    publish_rule(rule_id="no-print", **rule_fields(confidence=0.9))
    publish_rule(rule_id="sql-inject", **rule_fields(namespace="python.security", rule_type="security", confidence=0.95))
    publish_rule(rule_id="slow-loop", **rule_fields(rule_type="performance", confidence=0.4, source_instance="agent-b"))
    drain(GENESIS_CONSUMER)


def rule_ids(rules) -> set[str]:
    return {rule.rule_id for rule in rules}


def test_get_rules_filters(applied_rules):
    assert rule_ids(get_rules()) == {"no-print", "sql-inject", "slow-loop"}
    assert rule_ids(get_rules(namespace="python.security")) == {"sql-inject"}
    assert rule_ids(get_rules(min_confidence=0.9)) == {"no-print", "sql-inject"}
    assert rule_ids(get_rules(rule_type="performance")) == {"slow-loop"}
    assert rule_ids(get_rules(source="agent-b")) == {"slow-loop"}
    assert rule_ids(get_rules(namespace="python.lint", min_confidence=0.5)) == {"no-print"}


def test_get_rules_only_latest_version(applied_rules):
    publish_rule(rule_id="no-print", **rule_fields(confidence=0.7))
    drain(GENESIS_CONSUMER)

    [rule] = get_rules(namespace="python.lint", rule_type="linting")
    assert (rule.rule_id, rule.version) == ("no-print", 2)


@pytest.mark.parametrize("arguments", [{"min_confidence": 1.2}, {"rule_type": "style"}])
def test_get_rules_rejects_bad_filter(arguments):
    with pytest.raises(ValueError, match="invalid|unknown"):
        get_rules(**arguments)


def test_retire_removes_from_get_rules(applied_rules):
    retired = retire_rules(Rule.objects.filter(rule_id="no-print"), retired_by="ops")

    assert retired == 1
    assert "no-print" not in rule_ids(get_rules())
    assert Rule.objects.get(rule_id="no-print").retired_by == "ops"
    assert retire_rules(Rule.objects.filter(rule_id="no-print"), retired_by="ops") == 0


def test_retired_rule_redelivery_stays_retired(applied_rules, clean_queues):
    rule = Rule.objects.get(rule_id="no-print")
    retire_rules(Rule.objects.filter(pk=rule.pk), retired_by="ops")
    published = PublishedRule.objects.get(rule_id="no-print")

    clean_queues.send(GENESIS_RULE_UPDATES, rule_update_body(published))
    drain(GENESIS_CONSUMER)

    assert Rule.objects.get(pk=rule.pk).status == RuleStatus.RETIRED


def test_statistics(applied_rules):
    statistics = rule_statistics()

    assert {row["namespace"]: row["count"] for row in statistics.by_namespace} == {"python.lint": 2, "python.security": 1}
    assert {row["rule_type"]: row["count"] for row in statistics.by_type} == {"linting": 1, "security": 1, "performance": 1}
    assert {row["source_instance"]: row["count"] for row in statistics.by_source} == {"agent-a": 2, "agent-b": 1}
    assert [row["count"] for row in statistics.by_confidence] == [1, 0, 2]
    assert statistics.by_status == {"applied": 3, "superseded": 0, "retired": 0}
