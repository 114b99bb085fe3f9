"""Create ``observer_hitl_withdrawals``, on which agents withdraw requests they no longer need."""
from django.db import migrations

from singularity.messaging.install import create_queues, drop_queues

# Fixed here rather than imported, so this migration keeps creating the queue it was written for.
WITHDRAWAL_QUEUES = ["observer_hitl_withdrawals"]


def create_withdrawal_queue(apps, schema_editor):
    create_queues(schema_editor.connection, WITHDRAWAL_QUEUES)


def drop_withdrawal_queue(apps, schema_editor):
    drop_queues(schema_editor.connection, WITHDRAWAL_QUEUES)


class Migration(migrations.Migration):

    dependencies = [("singularity_hitl", "0002_decision_event"), ("singularity", "0002_install_pgmq")]

    operations = [migrations.RunPython(create_withdrawal_queue, drop_withdrawal_queue)]
