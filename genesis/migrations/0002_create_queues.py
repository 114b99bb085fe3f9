"""Create the rule update queues: genesis_rule_updates (to genesis) and its results queue (back)."""
from django.db import migrations

from singularity.messaging.install import create_queues, drop_queues

QUEUES = ("genesis_rule_updates", "genesis_rule_updates_results")


def create(apps, schema_editor):
    create_queues(schema_editor.connection, QUEUES)


def drop(apps, schema_editor):
    drop_queues(schema_editor.connection, QUEUES)


class Migration(migrations.Migration):
    dependencies = [("genesis", "0001_initial"), ("singularity", "0002_install_pgmq")]

    operations = [migrations.RunPython(create, drop)]
