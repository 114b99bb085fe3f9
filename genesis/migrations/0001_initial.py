"""Genesis's tables: applied rules, monitor samples and alert incidents."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='MonitorSample',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('sampled_at', models.DateTimeField(db_index=True)),
                ('backlog_age_seconds', models.FloatField(blank=True, help_text='Age of the oldest message waiting in genesis_rule_updates.', null=True)),
                ('apply_lag_seconds', models.FloatField(blank=True, help_text='Longest publish-to-apply time of the rules applied since the previous run.', null=True)),
                ('applied_since_previous', models.PositiveIntegerField(default=0)),
                ('unacknowledged', models.PositiveIntegerField(help_text='Published rule versions without a result.')),
                ('unacknowledged_overdue', models.PositiveIntegerField(help_text='Of those, the ones older than GENESIS_ALERT_UNACKNOWLEDGED_SECONDS.')),
                ('rejected_total', models.PositiveIntegerField()),
                ('apply_failures', models.PositiveIntegerField(help_text='genesis_rule_updates messages dead-lettered, or waiting for a retry after a failed attempt.')),
            ],
            options={
                'ordering': ['-sampled_at'],
            },
        ),
        migrations.CreateModel(
            name='AlertIncident',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('alert', models.CharField(choices=[('queue_backlog', 'Oldest message too old'), ('unacknowledged_rules', 'Rules published but not acknowledged'), ('dead_letters', 'Dead-lettered messages')], max_length=40)),
                ('subject', models.CharField(blank=True, help_text='The queue the alert is about, if any.', max_length=100)),
                ('severity', models.CharField(choices=[('warning', 'Warning'), ('error', 'Error')], max_length=10)),
                ('status', models.CharField(choices=[('open', 'Open'), ('resolved', 'Resolved')], default='open', max_length=10)),
                ('message', models.TextField()),
                ('threshold', models.FloatField()),
                ('trigger_value', models.FloatField(help_text='The value that opened the incident.')),
                ('trigger_values', models.JSONField(default=dict, help_text="The monitor's figures when the incident opened.")),
                ('last_value', models.FloatField()),
                ('peak_value', models.FloatField()),
                ('clear_runs', models.PositiveIntegerField(default=0, help_text='Runs in a row that found the condition clear.')),
                ('opened_at', models.DateTimeField()),
                ('last_seen_at', models.DateTimeField()),
                ('resolved_at', models.DateTimeField(blank=True, null=True)),
                ('opened_webhook', models.CharField(blank=True, choices=[('disabled', 'No webhook configured'), ('sent', 'Sent'), ('failed', 'Failed')], max_length=10)),
                ('resolved_webhook', models.CharField(blank=True, choices=[('disabled', 'No webhook configured'), ('sent', 'Sent'), ('failed', 'Failed')], max_length=10)),
                ('webhook_error', models.TextField(blank=True)),
            ],
            options={
                'ordering': ['-opened_at'],
                'constraints': [models.UniqueConstraint(condition=models.Q(('status', 'open')), fields=('alert', 'subject'), name='genesis_alert_one_open_incident')],
            },
        ),
        migrations.CreateModel(
            name='Rule',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('rule_id', models.CharField(max_length=200)),
                ('version', models.PositiveIntegerField()),
                ('namespace', models.CharField(max_length=200)),
                ('rule_type', models.CharField(choices=[('linting', 'Linting'), ('validation', 'Validation'), ('security', 'Security'), ('performance', 'Performance')], max_length=20)),
                ('pattern', models.JSONField()),
                ('action', models.JSONField()),
                ('confidence', models.FloatField()),
                ('source_instance', models.CharField(max_length=200)),
                ('status', models.CharField(choices=[('applied', 'Applied'), ('superseded', 'Superseded'), ('retired', 'Retired')], default='applied', max_length=20)),
                ('msg_id', models.BigIntegerField(help_text='pgmq id of the genesis_rule_updates message that delivered it.')),
                ('published_at', models.DateTimeField(help_text='When the publisher published this version.')),
                ('applied_at', models.DateTimeField()),
                ('superseded_at', models.DateTimeField(blank=True, null=True)),
                ('retired_at', models.DateTimeField(blank=True, null=True)),
                ('retired_by', models.CharField(blank=True, help_text='Username of the operator who retired it.', max_length=150)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['rule_id', '-version'],
                'indexes': [models.Index(fields=['status', 'namespace'], name='genesis_rul_status_aac235_idx'), models.Index(fields=['applied_at'], name='genesis_rul_applied_6a0cfb_idx')],
                'constraints': [models.UniqueConstraint(fields=('rule_id', 'version'), name='genesis_rule_unique_version'), models.UniqueConstraint(condition=models.Q(('status', 'applied')), fields=('rule_id',), name='genesis_rule_one_applied_version'), models.CheckConstraint(condition=models.Q(('confidence__gte', 0), ('confidence__lte', 1)), name='genesis_rule_confidence_range')],
            },
        ),
        migrations.CreateModel(
            name='QueueSample',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('queue_name', models.CharField(max_length=47)),
                ('depth', models.PositiveIntegerField()),
                ('visible_depth', models.PositiveIntegerField()),
                ('oldest_age_seconds', models.FloatField(blank=True, null=True)),
                ('newest_age_seconds', models.FloatField(blank=True, null=True)),
                ('total_sent', models.BigIntegerField()),
                ('dead_letters', models.PositiveIntegerField(help_text='Messages in dead_letters that came from this queue.')),
                ('sample', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='queues', to='genesis.monitorsample')),
            ],
            options={
                'ordering': ['queue_name'],
                'constraints': [models.UniqueConstraint(fields=('sample', 'queue_name'), name='genesis_queuesample_unique')],
            },
        ),
    ]
