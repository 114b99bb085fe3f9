"""Schedule ``observer.expiry.expire_due_approvals`` with django-q2, every minute."""
from django.db import migrations

from observer.expiry import EXPIRY_SCHEDULE_MINUTES, EXPIRY_SCHEDULE_NAME, EXPIRY_TASK


def create(apps, schema_editor):
    schedule_model = apps.get_model("django_q", "Schedule")
    schedule_model.objects.update_or_create(
        name=EXPIRY_SCHEDULE_NAME,
        defaults={
            "func": EXPIRY_TASK,
            "schedule_type": "I",  # django_q.models.Schedule.MINUTES
            "minutes": EXPIRY_SCHEDULE_MINUTES,
            "repeats": -1,  # forever
        },
    )


def drop(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=EXPIRY_SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("observer", "0004_approvers_group"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create, drop)]
