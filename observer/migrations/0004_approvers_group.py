"""Create the Approvers group with the permission to decide approvals."""
from django.db import migrations

from observer.permissions import APPROVERS_GROUP, ensure_approvers_group


def create(apps, schema_editor):
    ensure_approvers_group(
        apps.get_model("auth", "Group"),
        apps.get_model("auth", "Permission"),
        apps.get_model("contenttypes", "ContentType"),
    )


def drop(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=APPROVERS_GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("observer", "0003_create_queues"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create, drop)]
