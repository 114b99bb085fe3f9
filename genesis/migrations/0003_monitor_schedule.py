"""Schedule ``genesis.monitor.run_monitor`` with django-q2 every GENESIS_MONITOR_INTERVAL_MINUTES."""
from django.conf import settings
from django.db import migrations
from django.utils import timezone

SCHEDULE_NAME = "genesis.monitor"
MONITOR_FUNC = "genesis.monitor.run_monitor"
MINUTES = "I"  # django_q.models.Schedule.MINUTES; the historical model has no class constants.


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    # update_or_create keeps one schedule however often the migration is applied and unapplied.
    Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": MONITOR_FUNC,
            "schedule_type": MINUTES,
            "minutes": settings.GENESIS_MONITOR_INTERVAL_MINUTES,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )


def drop(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("genesis", "0002_create_queues"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create, drop)]
