"""``manage.py genesis_backfill``: republish unacknowledged rules in batches, resumably, without duplicates."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

import singularity.rules.backfill as backfill
from genesis.models import Rule
from singularity.messaging.queues import GENESIS_RULE_UPDATES
from singularity.rules.models import PublishedRule, PublishStatus
from singularity.rules.publisher import publish_rule
from tests.test_genesis_pipeline import apply_and_answer, read_all, rule_fields

pytestmark = pytest.mark.django_db


def run_backfill(*args: str) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command("genesis_backfill", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


@pytest.fixture
def purged_rules(clean_queues):
    """Five published rules whose messages were purged before genesis saw them."""
    for number in range(5):
        publish_rule(rule_id=f"rule-{number}", **rule_fields(namespace="python.lint" if number < 3 else "sql"))
    clean_queues.purge(GENESIS_RULE_UPDATES)
    return clean_queues


def test_dry_run_sends_nothing(purged_rules):
    stdout, stderr = run_backfill("--dry-run")

    assert "Would send 5 rule version(s)" in stdout
    assert "[#" not in stderr
    assert "rule-0 v1" in stdout
    assert read_all(purged_rules, GENESIS_RULE_UPDATES) == []
    assert set(PublishedRule.objects.values_list("publish_count", flat=True)) == {1}


def test_backfill_repairs_purged_rules(purged_rules):
    stdout, stderr = run_backfill("--batch-size", "2")

    assert "Sent 5 rule version(s) in 3 batch(es)" in stdout
    assert "[##############################] 5/5" in stderr
    apply_and_answer()
    assert Rule.objects.count() == 5
    assert set(PublishedRule.objects.values_list("status", flat=True)) == {PublishStatus.APPLIED}


def test_backfill_rerun_sends_nothing(purged_rules):
    run_backfill()
    apply_and_answer()

    stdout, _ = run_backfill()

    assert "Sent 0 rule version(s)" in stdout
    assert read_all(purged_rules, GENESIS_RULE_UPDATES) == []


def test_backfill_skips_queued_messages(clean_queues):
    publish_rule(rule_id="in-flight", **rule_fields())

    stdout, _ = run_backfill()

    assert "Sent 0 rule version(s)" in stdout
    assert "1 skipped because their message is still queued" in stdout
    assert len(read_all(clean_queues, GENESIS_RULE_UPDATES)) == 1


def test_backfill_resumes_after_interrupt(purged_rules, monkeypatch):
    real_batch = backfill.republish_batch
    calls = []

    def interrupt_second_batch(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_batch(*args, **kwargs)

    monkeypatch.setattr("genesis.management.commands.genesis_backfill.republish_batch", interrupt_second_batch)
    with pytest.raises(CommandError, match="run the same command again to continue"):
        run_backfill("--batch-size", "2")
    assert len(read_all(purged_rules, GENESIS_RULE_UPDATES)) == 2
    monkeypatch.undo()

    stdout, _ = run_backfill("--batch-size", "2")

    assert "Sent 3 rule version(s)" in stdout
    assert "2 skipped because their message is still queued" in stdout
    bodies = [message.body for message in read_all(purged_rules, GENESIS_RULE_UPDATES)]
    assert sorted(body["rule_id"] for body in bodies) == [f"rule-{number}" for number in range(5)]
    assert set(PublishedRule.objects.values_list("publish_count", flat=True)) == {2}


def test_backfill_all_applies_no_duplicates(purged_rules):
    run_backfill()
    apply_and_answer()
    applied_at = dict(Rule.objects.values_list("rule_id", "applied_at"))

    stdout, _ = run_backfill("--all")
    apply_and_answer()

    assert "Sent 5 rule version(s)" in stdout
    assert dict(Rule.objects.values_list("rule_id", "applied_at")) == applied_at
    assert set(PublishedRule.objects.values_list("status", flat=True)) == {PublishStatus.APPLIED}


def test_backfill_namespace_scope(purged_rules):
    stdout, _ = run_backfill("--namespace", "sql")

    assert "Sent 2 rule version(s)" in stdout
    assert {message.body["namespace"] for message in read_all(purged_rules, GENESIS_RULE_UPDATES)} == {"sql"}


def test_backfill_since_scope(purged_rules):
    latest = PublishedRule.objects.order_by("-published_at").first()

    stdout, _ = run_backfill("--since", latest.published_at.isoformat())

    assert "Sent 1 rule version(s)" in stdout


def test_backfill_since_without_offset_is_utc(purged_rules):
    stdout, _ = run_backfill("--since", "2999-01-01T00:00:00")

    assert "Sent 0 rule version(s) in 0 batch(es); 0 in scope" in stdout


def test_backfill_rejects_bad_since(db):
    with pytest.raises(CommandError, match="argument --since: 'last week' is invalid"):
        run_backfill("--since", "last week")


def test_backfill_rejects_bad_batch_size(db):
    with pytest.raises(CommandError, match="--batch-size 0 is invalid"):
        run_backfill("--batch-size", "0")
