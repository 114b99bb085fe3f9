"""Tests of ``singularity.messaging.install``: pgmq into a database, by extension or by bundled SQL.

Each test that installs works on a scratch database of its own, created with psycopg on the test
database's server and dropped afterwards, so the test database itself is never changed.
"""
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django.db.backends.postgresql.base import DatabaseWrapper
from pgmq.install import get_embedded_install_sql, get_embedded_sql_version
from psycopg import sql

from singularity.messaging.install import BUNDLED_SQL, EXTENSION, PgmqSetup, create_queues, drop_queues, install_pgmq

pytestmark = pytest.mark.django_db


def _connect(dbname: str) -> psycopg.Connection:
    settings = connection.settings_dict
    return psycopg.connect(
        dbname=dbname,
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        autocommit=True,
    )


@contextmanager
def _admin():
    """A connection to the server's maintenance database, for CREATE and DROP DATABASE."""
    with _connect("postgres") as conn:
        yield conn


@contextmanager
def scratch_database(*, extension_control_path: str | None = None):
    """Create a database for one test, with ``extension_control_path`` set on it, and drop it after."""
    name = f"scratch_pgmq_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            if extension_control_path is not None:
                # Per database, so that only new sessions on this scratch database see the directory.
                admin.execute(
                    sql.SQL("ALTER DATABASE {} SET extension_control_path = {}").format(
                        sql.Identifier(name), sql.Literal(extension_control_path)
                    )
                )
            yield name
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def django_connection(dbname: str):
    """A Django connection (what ``install_pgmq`` takes) to ``dbname`` on the test server."""
    wrapper = DatabaseWrapper({**connection.settings_dict, "NAME": dbname}, alias=f"scratch_{dbname}")
    try:
        yield wrapper
    finally:
        wrapper.close()


def _fetch(wrapper, query: str, params=None) -> list[tuple]:
    with wrapper.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def _pgmq_works(wrapper) -> None:
    """Create a queue, send, read and drop it through the installed functions."""
    create_queues(wrapper, ["install_check"])
    [(msg_id,)] = _fetch(wrapper, "SELECT * FROM pgmq.send('install_check', %s::jsonb)", ['{"it": "works"}'])
    rows = _fetch(wrapper, "SELECT msg_id, message FROM pgmq.read('install_check', 30, 1)")
    assert [row[0] for row in rows] == [msg_id]
    drop_queues(wrapper, ["install_check"])
    assert _fetch(wrapper, "SELECT count(*) FROM pgmq.meta") == [(0,)]


# --- bundled SQL ---------------------------------------------------------------------------------


def test_install_on_a_fresh_database_uses_the_bundled_sql_and_is_idempotent():
    with scratch_database() as name, django_connection(name) as wrapper:
        if _fetch(wrapper, "SELECT 1 FROM pg_available_extensions WHERE name = 'pgmq'"):
            pytest.skip("this server offers the pgmq extension, so install_pgmq takes the extension path")
        assert _fetch(wrapper, "SELECT to_regclass('pgmq.meta')") == [(None,)]

        first = install_pgmq(wrapper)
        assert first == PgmqSetup(BUNDLED_SQL, get_embedded_sql_version(), installed_now=True)
        assert first.version == get_embedded_sql_version()
        assert _fetch(wrapper, "SELECT to_regclass('pgmq.meta') IS NOT NULL") == [(True,)]
        assert _fetch(wrapper, "SELECT count(*) FROM pg_extension WHERE extname = 'pgmq'") == [(0,)]

        second = install_pgmq(wrapper)
        assert second == PgmqSetup(BUNDLED_SQL, get_embedded_sql_version(), installed_now=False)
        _pgmq_works(wrapper)


def test_install_keeps_queues_and_messages_when_run_again():
    with scratch_database() as name, django_connection(name) as wrapper:
        install_pgmq(wrapper)
        create_queues(wrapper, ["kept"])
        _fetch(wrapper, "SELECT * FROM pgmq.send('kept', '{\"a\": 1}'::jsonb)")
        assert install_pgmq(wrapper).installed_now is False
        assert _fetch(wrapper, "SELECT count(*) FROM pgmq.q_kept") == [(1,)]


def test_install_inside_a_transaction_rolls_back_with_it():
    """As in a migration that fails later: the bundled script leaves nothing behind after a rollback."""
    with scratch_database() as name, django_connection(name) as wrapper:
        wrapper.set_autocommit(False)
        try:
            assert install_pgmq(wrapper).installed_now is True
            assert _fetch(wrapper, "SELECT to_regclass('pgmq.meta') IS NOT NULL") == [(True,)]
            wrapper.rollback()
        finally:
            wrapper.set_autocommit(True)
        assert _fetch(wrapper, "SELECT to_regclass('pgmq.meta'), to_regnamespace('pgmq')") == [(None, None)]


def test_migration_recorded_the_installation():
    from singularity.models import PgmqInstallation

    record = PgmqInstallation.objects.first()
    assert record is not None, "the 0002_install_pgmq migration wrote no PgmqInstallation row"
    assert record.method in PgmqInstallation.Method.values
    assert record.version
    assert record.recorded_at is not None
    # The test database got pgmq from the migration, so a new call finds it and installs nothing.
    now = install_pgmq(connection)
    assert now == PgmqSetup(record.method, record.version, installed_now=False)
    if record.method == BUNDLED_SQL:
        assert record.version == get_embedded_sql_version()
    assert str(record) == f"pgmq {record.version} ({record.get_method_display()})"


# --- extension ---------------------------------------------------------------------------------


@pytest.fixture
def pgmq_extension_dir():
    """A directory laid out for ``extension_control_path`` with pgmq built from the bundled SQL.

    PostgreSQL 18 appends ``extension`` to each path element and reads ``pgmq.control`` and
    ``pgmq--<version>.sql`` from there. The server runs as its own OS user, so the directory is
    made world-readable.
    """
    version = get_embedded_sql_version()
    root = Path(tempfile.mkdtemp(prefix="singularity_pgmq_ext_"))
    extension = root / "extension"
    extension.mkdir()
    (extension / "pgmq.control").write_text(
        "comment = 'pgmq built from the SQL bundled with the pgmq Python package (test)'\n"
        f"default_version = '{version}'\n"
        "relocatable = false\n"
        "schema = 'pgmq'\n"
    )
    (extension / f"pgmq--{version}.sql").write_text(get_embedded_install_sql())
    for directory in (root, extension):
        directory.chmod(0o755)
    for file in extension.iterdir():
        file.chmod(0o644)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _skip_unless_extension_control_path_works(root: Path) -> None:
    with _admin() as admin:
        if admin.info.server_version < 180000:
            pytest.skip(f"extension_control_path needs PostgreSQL 18; this server is {admin.info.server_version}")
        if not admin.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]:
            pytest.skip("setting extension_control_path needs a superuser")
        admin.execute(sql.SQL("SET extension_control_path = {}").format(sql.Literal(f"{root}:$system")))
        offered = admin.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'pgmq'"
        ).fetchone()
        if offered is None or offered[0] != get_embedded_sql_version():
            pytest.skip(
                f"the server cannot read the extension directory {root} (is it on another machine?)"
            )


def test_install_takes_the_extension_path_when_the_server_offers_pgmq(pgmq_extension_dir):
    _skip_unless_extension_control_path_works(pgmq_extension_dir)
    version = get_embedded_sql_version()
    with scratch_database(extension_control_path=f"{pgmq_extension_dir}:$system") as name:
        with django_connection(name) as wrapper:
            assert _fetch(wrapper, "SHOW extension_control_path") == [(f"{pgmq_extension_dir}:$system",)]
            assert _fetch(wrapper, "SELECT default_version FROM pg_available_extensions WHERE name = 'pgmq'") == [
                (version,)
            ]

            first = install_pgmq(wrapper)
            assert first == PgmqSetup(EXTENSION, version, installed_now=True)
            assert _fetch(wrapper, "SELECT extversion FROM pg_extension WHERE extname = 'pgmq'") == [(version,)]
            # The extension owns pgmq's objects, as it does when installed from the real package.
            assert _fetch(
                wrapper,
                "SELECT count(*) > 0 FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid "
                "WHERE e.extname = 'pgmq' AND d.deptype = 'e'",
            ) == [(True,)]

            second = install_pgmq(wrapper)
            assert second == PgmqSetup(EXTENSION, version, installed_now=False)
            _pgmq_works(wrapper)


def test_install_reports_the_extension_version_from_the_catalog(pgmq_extension_dir):
    """The recorded version is the one in ``pg_extension``, whichever version the server offers."""
    _skip_unless_extension_control_path_works(pgmq_extension_dir)
    extension = pgmq_extension_dir / "extension"
    other_version = f"{get_embedded_sql_version()}.test1"
    (extension / f"pgmq--{other_version}.sql").write_text(get_embedded_install_sql())
    (extension / f"pgmq--{other_version}.sql").chmod(0o644)
    control = extension / "pgmq.control"
    control.write_text(control.read_text().replace(get_embedded_sql_version(), other_version))
    with scratch_database(extension_control_path=f"{pgmq_extension_dir}:$system") as name:
        with django_connection(name) as wrapper:
            assert install_pgmq(wrapper) == PgmqSetup(EXTENSION, other_version, installed_now=True)
            assert install_pgmq(wrapper) == PgmqSetup(EXTENSION, other_version, installed_now=False)


def test_sql_install_is_kept_when_the_extension_appears_later(pgmq_extension_dir):
    """A database that got pgmq from the bundled SQL is not converted: CREATE EXTENSION would clash."""
    _skip_unless_extension_control_path_works(pgmq_extension_dir)
    with scratch_database() as name:
        with django_connection(name) as wrapper:
            assert install_pgmq(wrapper).method == BUNDLED_SQL
        with _admin() as admin:
            admin.execute(
                sql.SQL("ALTER DATABASE {} SET extension_control_path = {}").format(
                    sql.Identifier(name), sql.Literal(f"{pgmq_extension_dir}:$system")
                )
            )
        with django_connection(name) as wrapper:
            assert _fetch(wrapper, "SELECT count(*) FROM pg_available_extensions WHERE name = 'pgmq'") == [(1,)]
            assert install_pgmq(wrapper) == PgmqSetup(BUNDLED_SQL, get_embedded_sql_version(), installed_now=False)
            assert _fetch(wrapper, "SELECT count(*) FROM pg_extension WHERE extname = 'pgmq'") == [(0,)]
