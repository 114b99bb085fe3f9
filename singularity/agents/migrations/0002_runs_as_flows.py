"""Agent runs become quantum_flow flows: drop the wake-up triggers, the wait fields and ``agent_runs``.

A run left unfinished by the earlier engine cannot be carried over to a flow run, so it is closed
as failed with a note saying so; start it again with ``manage.py agents run``.
"""
from importlib import import_module

from django.db import migrations
from django.utils import timezone

from singularity.messaging.install import create_queues, drop_queues

# Reversing recreates the triggers exactly as 0001 made them.
_initial = import_module("singularity.agents.migrations.0001_initial")
WAKE_TRIGGERS_CREATE = _initial.WAKE_TRIGGERS_CREATE
WAKE_TRIGGERS_DROP = _initial.WAKE_TRIGGERS_DROP

# Fixed here rather than imported, as in 0001.
FINAL_STATUSES = ["succeeded", "nothing_to_do", "failed", "rejected", "expired", "cancelled", "conflict"]
AGENT_QUEUES = ["agent_runs"]


def close_unfinished_runs(apps, schema_editor):
    AgentRun = apps.get_model("singularity_agents", "AgentRun")
    AgentRun.objects.exclude(status__in=FINAL_STATUSES).update(
        status="failed",
        step="done",
        outcome="Closed by the upgrade to flow-based agent runs, which cannot resume this run; start it again.",
        finished_at=timezone.now(),
    )


def drop_agent_queue(apps, schema_editor):
    drop_queues(schema_editor.connection, AGENT_QUEUES)


def create_agent_queue(apps, schema_editor):
    create_queues(schema_editor.connection, AGENT_QUEUES)


class Migration(migrations.Migration):

    dependencies = [
        ('singularity_agents', '0001_initial'),
    ]

    operations = [
        migrations.RunSQL(WAKE_TRIGGERS_DROP, WAKE_TRIGGERS_CREATE),
        migrations.RunPython(close_unfinished_runs, migrations.RunPython.noop),
        migrations.RemoveIndex(
            model_name='agentrun',
            name='agents_run_waiting',
        ),
        migrations.RemoveField(
            model_name='agentrun',
            name='wait_kind',
        ),
        migrations.RemoveField(
            model_name='agentrun',
            name='waiting_for',
        ),
        migrations.RunPython(drop_agent_queue, create_agent_queue),
    ]
