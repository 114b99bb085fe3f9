"""Install pgmq (extension where offered, else the bundled SQL) and record how."""
from django.db import migrations

from singularity.messaging.install import install_pgmq


def install(apps, schema_editor):
    setup = install_pgmq(schema_editor.connection)
    PgmqInstallation = apps.get_model("singularity", "PgmqInstallation")
    PgmqInstallation.objects.using(schema_editor.connection.alias).create(
        method=setup.method, version=setup.version, installed_now=setup.installed_now
    )


class Migration(migrations.Migration):
    dependencies = [("singularity", "0001_initial")]

    # Reversing leaves pgmq in place: dropping it would destroy every queue and its messages.
    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
