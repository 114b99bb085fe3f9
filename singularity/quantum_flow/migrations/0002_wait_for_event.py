"""Wait-for-event steps: the waiting status and fields, kept events, the delivery function and ``flow_events``.

``quantum_flow_deliver_event(event, key, payload, keep)`` completes every step waiting for
``(event, key)`` with ``payload`` as its output, counts the completion on the run and sends the
tasks of the dependents it makes ready, like a step worker's completion; see
``singularity/quantum_flow/events.py``. Python calls it through ``deliver_event``, and triggers
of other apps call it when they store an answer a step may wait for.
"""
from django.db import migrations, models

from singularity.messaging.install import create_queues, drop_queues

# Fixed here rather than imported, so this migration keeps doing what it was written for.
EVENT_QUEUES = ["flow_events"]

DELIVER_CREATE = """
CREATE OR REPLACE FUNCTION quantum_flow_deliver_event(p_event text, p_key text, p_payload jsonb, p_keep boolean)
RETURNS integer AS $$
DECLARE
    waiter record;
    delivered integer := 0;
BEGIN
    IF p_keep THEN
        -- Orders this delivery and a step starting to wait for the same event (events.lock_event).
        PERFORM pg_advisory_xact_lock(hashtextextended('quantum_flow_event:' || p_event || ':' || p_key, 0));
    END IF;
    FOR waiter IN
        SELECT step.id, step.run_id, step.name, step.task_msg_id, run.flow
        FROM quantum_flow_stepstate AS step JOIN quantum_flow_flowrun AS run ON run.id = step.run_id
        WHERE step.status = 'waiting' AND step.wait_event = p_event AND step.wait_key = p_key
        ORDER BY step.run_id, step.id
    LOOP
        -- The run row first, as everywhere in the engine; a run that stopped takes no delivery.
        PERFORM 1 FROM quantum_flow_flowrun WHERE id = waiter.run_id AND status = 'running' FOR UPDATE;
        CONTINUE WHEN NOT FOUND;
        UPDATE quantum_flow_stepstate
        SET status = 'completed', output = p_payload, error = '', finished_at = clock_timestamp()
        WHERE id = waiter.id AND status = 'waiting';
        CONTINUE WHEN NOT FOUND;
        UPDATE quantum_flow_flowrun SET
            remaining_steps = remaining_steps - 1,
            updated_at = clock_timestamp(),
            status = CASE WHEN remaining_steps = 1 THEN 'completed' ELSE status END,
            finished_at = CASE WHEN remaining_steps = 1 THEN clock_timestamp() ELSE finished_at END
        WHERE id = waiter.run_id;
        UPDATE quantum_flow_stepstate SET
            remaining_deps = remaining_deps - 1,
            status = CASE WHEN remaining_deps = 1 THEN 'queued' ELSE status END,
            queued_at = CASE WHEN remaining_deps = 1 THEN clock_timestamp() ELSE queued_at END,
            task_msg_id = CASE WHEN remaining_deps = 1 THEN (SELECT pgmq.send(
                'flow_' || waiter.flow,
                jsonb_build_object('flow', waiter.flow, 'run_id', waiter.run_id::text, 'step', name)
            )) ELSE task_msg_id END
        WHERE run_id = waiter.run_id AND status = 'pending' AND depends_on ? waiter.name;
        IF waiter.task_msg_id IS NOT NULL THEN
            -- The task kept hidden until the wait's deadline.
            PERFORM pgmq.archive('flow_' || waiter.flow, waiter.task_msg_id);
        END IF;
        delivered := delivered + 1;
    END LOOP;
    IF delivered = 0 AND p_keep THEN
        INSERT INTO quantum_flow_flowevent (event, key, payload, received_at)
        VALUES (p_event, p_key, p_payload, clock_timestamp())
        ON CONFLICT (event, key) DO NOTHING;
    END IF;
    RETURN delivered;
END;
$$ LANGUAGE plpgsql;
"""

DELIVER_DROP = "DROP FUNCTION IF EXISTS quantum_flow_deliver_event(text, text, jsonb, boolean);"


def create_event_queue(apps, schema_editor):
    create_queues(schema_editor.connection, EVENT_QUEUES)


def drop_event_queue(apps, schema_editor):
    drop_queues(schema_editor.connection, EVENT_QUEUES)


class Migration(migrations.Migration):

    dependencies = [
        ('quantum_flow', '0001_initial'),
        ('singularity', '0002_install_pgmq'),
    ]

    operations = [
        migrations.CreateModel(
            name='FlowEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('event', models.CharField(max_length=100)),
                ('key', models.CharField(max_length=200)),
                ('payload', models.JSONField(blank=True, null=True)),
                ('received_at', models.DateTimeField()),
            ],
            options={
                'ordering': ['-received_at'],
            },
        ),
        migrations.AddField(
            model_name='stepstate',
            name='wait_deadline',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='stepstate',
            name='wait_event',
            field=models.CharField(blank=True, db_default="", default="", max_length=100),
        ),
        migrations.AddField(
            model_name='stepstate',
            name='wait_key',
            field=models.CharField(blank=True, db_default="", default="", max_length=200),
        ),
        migrations.AlterField(
            model_name='stepstate',
            name='status',
            field=models.CharField(choices=[('pending', 'pending (waiting for dependencies)'), ('queued', 'queued (task sent)'), ('running', 'Running'), ('waiting', 'waiting (for an event)'), ('completed', 'Completed'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='pending', max_length=20),
        ),
        migrations.AddIndex(
            model_name='stepstate',
            index=models.Index(condition=models.Q(('status', 'waiting')), fields=['wait_event', 'wait_key'], name='quantum_flow_step_waiting'),
        ),
        migrations.AddConstraint(
            model_name='flowevent',
            constraint=models.UniqueConstraint(fields=('event', 'key'), name='quantum_flow_event_unique_key'),
        ),
        migrations.RunSQL(DELIVER_CREATE, DELIVER_DROP),
        migrations.RunPython(create_event_queue, drop_event_queue),
    ]
