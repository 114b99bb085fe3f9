"""Create the queues of the LLM path and the dead-letter queue."""
from django.db import migrations

from singularity.messaging.install import create_queues, drop_queues

QUEUES = ("ai_requests", "ai_results", "dead_letters")


def create(apps, schema_editor):
    create_queues(schema_editor.connection, QUEUES)


def drop(apps, schema_editor):
    drop_queues(schema_editor.connection, QUEUES)


class Migration(migrations.Migration):
    dependencies = [("singularity", "0002_install_pgmq")]

    operations = [migrations.RunPython(create, drop)]
