"""The human-in-the-loop client's tables, and the notification sent when a decision is stored.

The trigger notifies ``singularity_hitl_decisions`` with the request_id at commit, so a woken
``await_decision`` always finds the row, whichever code path wrote it.
"""

import django.db.models.deletion
import uuid
from django.db import migrations, models

NOTIFY_CREATE = """
CREATE FUNCTION singularity_hitl_notify_decision_stored() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('singularity_hitl_decisions', NEW.request_id::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER singularity_hitl_decision_notify
AFTER INSERT ON singularity_hitl_hitldecision
FOR EACH ROW EXECUTE FUNCTION singularity_hitl_notify_decision_stored();
"""

NOTIFY_DROP = """
DROP TRIGGER IF EXISTS singularity_hitl_decision_notify ON singularity_hitl_hitldecision;
DROP FUNCTION IF EXISTS singularity_hitl_notify_decision_stored();
"""


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='HitlRequest',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('request_id', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('type', models.CharField(choices=[('approval', 'Approval'), ('question', 'Question')], max_length=20)),
                ('agent_id', models.CharField(max_length=200)),
                ('task_type', models.CharField(max_length=100)),
                ('reply_to', models.CharField(max_length=47)),
                ('expires_at', models.DateTimeField(blank=True, null=True)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('decided', 'Decided')], default='pending', max_length=20)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name': 'HITL request',
                'ordering': ['-created_at'],
            },
        ),
        migrations.CreateModel(
            name='HitlDecision',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('decision', models.CharField(choices=[('approved', 'Approved'), ('rejected', 'Rejected'), ('answered', 'Answered'), ('cancelled', 'Cancelled'), ('expired', 'Expired')], max_length=20)),
                ('decided_by', models.CharField(blank=True, help_text='Username of the approver; empty when the request expired.', max_length=150)),
                ('reason', models.TextField(blank=True)),
                ('answer', models.TextField(blank=True)),
                ('decided_at', models.DateTimeField()),
                ('raw', models.JSONField(help_text='The decision message body as received.')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('request', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='decision', to='singularity_hitl.hitlrequest', to_field='request_id')),
            ],
            options={
                'verbose_name': 'HITL decision',
                'ordering': ['-created_at'],
            },
        ),
        migrations.RunSQL(NOTIFY_CREATE, NOTIFY_DROP),
    ]
