"""Create the human-in-the-loop queues: agents' requests, and the decisions shared by all agents."""
from django.db import migrations

from singularity.messaging.install import create_queues, drop_queues

QUEUES = ("observer_hitl_requests", "observer_decisions")


def create(apps, schema_editor):
    create_queues(schema_editor.connection, QUEUES)


def drop(apps, schema_editor):
    drop_queues(schema_editor.connection, QUEUES)


class Migration(migrations.Migration):
    dependencies = [("observer", "0002_history_append_only"), ("singularity", "0002_install_pgmq")]

    operations = [migrations.RunPython(create, drop)]
