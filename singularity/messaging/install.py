"""Install pgmq into a database: the server's extension when offered, else the SQL bundled with the ``pgmq`` package."""
from dataclasses import dataclass

from pgmq.install import get_embedded_install_sql, get_embedded_sql_version

EXTENSION = "extension"
BUNDLED_SQL = "bundled_sql"


@dataclass(frozen=True)
class PgmqSetup:
    """The install method and version of pgmq, and whether this call installed it."""

    method: str
    version: str
    installed_now: bool


def install_pgmq(connection) -> PgmqSetup:
    """Install pgmq on ``connection`` (a Django connection) unless it is already there."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'pgmq'")
        row = cursor.fetchone()
        if row:
            return PgmqSetup(EXTENSION, row[0], installed_now=False)

        cursor.execute("SELECT to_regclass('pgmq.meta') IS NOT NULL")
        if cursor.fetchone()[0]:
            # A SQL-only install leaves no version in the catalog; the package's pin is the best record.
            return PgmqSetup(BUNDLED_SQL, get_embedded_sql_version(), installed_now=False)

        cursor.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'pgmq'")
        row = cursor.fetchone()
        if row:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pgmq")
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'pgmq'")
            return PgmqSetup(EXTENSION, cursor.fetchone()[0], installed_now=True)

        # The script is the package's own file, run as one multi-statement string with no parameters.
        cursor.execute(get_embedded_install_sql())
        return PgmqSetup(BUNDLED_SQL, get_embedded_sql_version(), installed_now=True)


def create_queues(connection, names) -> None:
    """Create each queue (a no-op where it exists) and turn on its insert notifications."""
    from .queues import validate_queue_name

    with connection.cursor() as cursor:
        for name in names:
            validate_queue_name(name)
            cursor.execute("SELECT pgmq.create(%s)", [name])
            cursor.execute("SELECT pgmq.enable_notify_insert(%s, 0)", [name])


def drop_queues(connection, names) -> None:
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute("SELECT pgmq.drop_queue(%s) FROM pgmq.meta WHERE queue_name = %s", [name, name])
