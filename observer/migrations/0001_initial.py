"""Observer's tables: approvals and their append-only history."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Approval',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('request_id', models.UUIDField(editable=False, unique=True)),
                ('type', models.CharField(choices=[('approval', 'Approval'), ('question', 'Question')], max_length=20)),
                ('agent_id', models.CharField(max_length=200)),
                ('task_type', models.CharField(max_length=100)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('approved', 'Approved'), ('rejected', 'Rejected'), ('answered', 'Answered'), ('cancelled', 'Cancelled'), ('expired', 'Expired')], default='pending', max_length=20)),
                ('summary', models.TextField(blank=True)),
                ('payload', models.JSONField(default=dict, help_text='What the agent asks about, as it sent it.')),
                ('metadata', models.JSONField(blank=True, default=dict)),
                ('reply_to', models.CharField(help_text='The queue that receives the decision.', max_length=47)),
                ('expires_at', models.DateTimeField(blank=True, null=True)),
                ('decision_reason', models.TextField(blank=True)),
                ('answer', models.TextField(blank=True)),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='approval_decisions', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-created_at'],
                'permissions': [('decide_approval', 'Can approve, reject, answer or cancel approvals')],
            },
        ),
        migrations.CreateModel(
            name='ApprovalHistory',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('from_status', models.CharField(blank=True, choices=[('pending', 'Pending'), ('approved', 'Approved'), ('rejected', 'Rejected'), ('answered', 'Answered'), ('cancelled', 'Cancelled'), ('expired', 'Expired')], max_length=20)),
                ('to_status', models.CharField(choices=[('pending', 'Pending'), ('approved', 'Approved'), ('rejected', 'Rejected'), ('answered', 'Answered'), ('cancelled', 'Cancelled'), ('expired', 'Expired')], max_length=20)),
                ('reason', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('actor', models.ForeignKey(blank=True, help_text='The signed-in user; empty for changes the system made (ingest, expiry).', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='approval_history', to=settings.AUTH_USER_MODEL)),
                ('approval', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='history', to='observer.approval')),
            ],
            options={
                'verbose_name_plural': 'approval history',
                'ordering': ['created_at', 'id'],
            },
        ),
        migrations.AddIndex(
            model_name='approval',
            index=models.Index(fields=['status', 'created_at'], name='observer_ap_status_3933f8_idx'),
        ),
        migrations.AddIndex(
            model_name='approval',
            index=models.Index(fields=['status', 'expires_at'], name='observer_ap_status_de1bfb_idx'),
        ),
    ]
