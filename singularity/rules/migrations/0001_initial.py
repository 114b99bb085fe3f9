"""The publisher's outbox table of rule versions."""

from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='PublishedRule',
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
                ('status', models.CharField(choices=[('published', 'Published'), ('applied', 'Applied'), ('rejected', 'Rejected')], default='published', max_length=20)),
                ('last_error', models.TextField(blank=True, help_text='Why genesis rejected this version, if it did.')),
                ('msg_id', models.BigIntegerField(blank=True, help_text='pgmq id of the latest message sent for this version.', null=True)),
                ('publish_count', models.PositiveIntegerField(default=1, help_text='Messages sent for this version; above 1 after a backfill.')),
                ('published_at', models.DateTimeField()),
                ('last_sent_at', models.DateTimeField()),
                ('acknowledged_at', models.DateTimeField(blank=True, null=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['-published_at'],
                'indexes': [models.Index(fields=['status', 'published_at'], name='singularity_status_fc59a1_idx')],
                'constraints': [models.UniqueConstraint(fields=('rule_id', 'version'), name='singularity_rules_unique_rule_version'), models.CheckConstraint(condition=models.Q(('confidence__gte', 0), ('confidence__lte', 1)), name='singularity_rules_confidence_range')],
            },
        ),
    ]
