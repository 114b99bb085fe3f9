"""Tests of ``singularity.database.config`` (DATABASE_URL <-> Django settings) and ``tests.database``."""
import os
import time
from pathlib import Path

import pytest

from singularity.database import config as db_config
from singularity.database.config import DatabaseUrlError, database_settings, database_url
from tests import database as test_db  # a module: importing test_* names would make pytest collect them

# A data folder that must never be touched: every URL below is non-empty, so no server starts.
NO_DATA_DIR = Path("/nonexistent/singularity-test-data")
ENGINE = "django.db.backends.postgresql"


def settings_for(url: str) -> dict:
    return database_settings(url, data_dir=NO_DATA_DIR, database_name="unused")


def _core(config: dict) -> dict:
    return {key: str(config.get(key) or "") for key in ("NAME", "HOST", "PORT", "USER", "PASSWORD")}


# --- database_settings --------------------------------------------------------------------------


def test_postgres_url_gives_every_part():
    config = settings_for(
        "postgresql://bob:s3cret@db.example.com:6543/app_db?sslmode=require&application_name=web&connect_timeout=5"
    )
    assert config["ENGINE"] == ENGINE
    assert config["NAME"] == "app_db"
    assert config["HOST"] == "db.example.com"
    assert int(config["PORT"]) == 6543
    assert config["USER"] == "bob"
    assert config["PASSWORD"] == "s3cret"
    assert config["OPTIONS"] == {"sslmode": "require", "application_name": "web", "connect_timeout": 5}


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "pgsql", "postgis"])
def test_every_postgres_scheme_uses_the_postgresql_engine(scheme):
    config = settings_for(f"{scheme}://u:p@h:5432/d")
    assert config["ENGINE"] == ENGINE
    assert (config["NAME"], config["HOST"], config["USER"], config["PASSWORD"]) == ("d", "h", "u", "p")


def test_url_without_port_or_password():
    config = settings_for("postgresql://bob@db/app")
    assert (config["USER"], config["PASSWORD"], config["HOST"], config["PORT"], config["NAME"]) == (
        "bob",
        "",
        "db",
        "",
        "app",
    )


def test_percent_encoded_password_is_decoded():
    config = settings_for("postgresql://bob:p%40ss%3Aw%2Frd%23%3F%25@db:5432/app")
    assert config["PASSWORD"] == "p@ss:w/rd#?%"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("postgresql://bob@%2Fvar%2Frun%2Fpostgresql/app", "/var/run/postgresql"),
        ("postgresql://bob:pw@%2Ftmp%2FMy%20Data%2Fpostgres:5432/app", "/tmp/My Data/postgres"),
        ("postgres://%2Fwork%2Fmain%2F.data%2Fpostgres/singularity", "/work/main/.data/postgres"),
    ],
)
def test_socket_directory_host_is_decoded(url, host):
    config = settings_for(url)
    assert config["HOST"] == host
    assert config["NAME"] in ("app", "singularity")


SECRET = "hunter2-Sup3rSecret"


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://root:{SECRET}@db.example.com:3306/app",
        f"sqlite:///{SECRET}.db",
        f"http://u:{SECRET}@x/y",
        f"mysql://root:{SECRET}@db/app?password={SECRET}",
        f"postgresql+psycopg://u:{SECRET}@h/d",
        f"root:{SECRET}@db.example.com/app",
        f"//root:{SECRET}@db/app",
        f"postgresql:/u:{SECRET}@h/d",
        "garbage",
        "   ",
        "postgresql",
        "://",
    ],
)
def test_non_postgres_url_raises_and_hides_the_password(url):
    with pytest.raises(DatabaseUrlError) as excinfo:
        settings_for(url)
    message = str(excinfo.value)
    assert "DATABASE_URL" in message
    assert "postgresql://" in message  # says what form to use
    if SECRET in url and not url.startswith("sqlite"):
        assert SECRET not in message
    assert isinstance(excinfo.value, ValueError)


def test_redacted_url_keeps_scheme_user_and_host():
    with pytest.raises(DatabaseUrlError) as excinfo:
        settings_for(f"mysql://root:{SECRET}@db.example.com:3306/app")
    assert "mysql://root:***@db.example.com:3306/app" in str(excinfo.value)


def test_postgres_url_with_a_bad_port_raises_database_url_error_without_the_password():
    with pytest.raises(DatabaseUrlError) as excinfo:
        settings_for(f"postgresql://u:{SECRET}@h:notaport/d")
    assert SECRET not in str(excinfo.value)
    assert "notaport" in str(excinfo.value)


def test_empty_url_starts_the_embedded_server(monkeypatch, tmp_path):
    calls = []

    def fake_start(*, data_dir, database_name):
        calls.append((data_dir, database_name))
        return {"ENGINE": ENGINE, "NAME": database_name}

    monkeypatch.setattr(db_config, "start_embedded_server", fake_start)
    for empty in ("", None):
        assert database_settings(empty, data_dir=tmp_path, database_name="dev") == {"ENGINE": ENGINE, "NAME": "dev"}
    assert calls == [(tmp_path, "dev"), (tmp_path, "dev")]


# --- database_url -------------------------------------------------------------------------------


ROUND_TRIP = [
    {"NAME": "app", "HOST": "db.example.com", "PORT": "5432", "USER": "bob", "PASSWORD": "s3cret"},
    {"NAME": "singularity", "HOST": "/work/main/.data/postgres", "PORT": "5432", "USER": "postgres", "PASSWORD": ""},
    {"NAME": "test_x", "HOST": "/tmp/My Folder/pg sock", "PORT": "", "USER": "", "PASSWORD": ""},
    {"NAME": "app", "HOST": "localhost", "PORT": 6543, "USER": "user@corp", "PASSWORD": "p@ss:w/rd#?%&= é'\""},
    {"NAME": "my db", "HOST": "127.0.0.1", "PORT": "5433", "USER": "bob", "PASSWORD": "%41%2F"},
    {"NAME": "app", "HOST": "::1", "PORT": "5432", "USER": "u", "PASSWORD": "x"},
    {"NAME": "app", "HOST": "", "PORT": "", "USER": "", "PASSWORD": ""},
]


@pytest.mark.parametrize("config", ROUND_TRIP, ids=lambda c: f"{c['HOST'] or 'nohost'}-{c['PASSWORD'] or 'nopw'}")
def test_settings_to_url_to_settings_round_trip(config):
    url = database_url({"ENGINE": ENGINE, **config})
    assert url.startswith("postgresql://")
    again = settings_for(url)
    assert _core(again) == _core(config)
    assert again["ENGINE"] == ENGINE
    # And once more: the URL is stable.
    assert database_url(again) == url


def test_url_round_trip_keeps_libpq_options():
    config = {
        "ENGINE": ENGINE,
        "NAME": "app",
        "HOST": "h",
        "PORT": "5432",
        "USER": "u",
        "PASSWORD": "p",
        "OPTIONS": {"sslmode": "require", "application_name": "worker one", "connect_timeout": 5},
    }
    again = settings_for(database_url(config))
    assert again["OPTIONS"] == {"sslmode": "require", "application_name": "worker one", "connect_timeout": 5}


def test_url_leaves_out_django_only_options():
    config = {
        "ENGINE": ENGINE,
        "NAME": "app",
        "HOST": "h",
        "PORT": "",
        "USER": "",
        "PASSWORD": "",
        "OPTIONS": {"isolation_level": 3, "server_side_binding": True, "pool": {"min_size": 1}, "sslmode": "disable"},
    }
    url = database_url(config)
    assert url == "postgresql://h/app?sslmode=disable"


def test_url_of_the_running_test_database_reaches_it(db):
    """``test_db_url`` hands this URL to worker processes: it must name the same database."""
    from django.db import connection

    url = database_url(connection.settings_dict)
    assert _core(settings_for(url)) == _core(connection.settings_dict)


# --- tests/database.py ----------------------------------------------------------------------------


def test_test_database_url_prefers_test_database_url():
    url = "postgresql://u:p@elsewhere:5432/postgres"
    assert test_db.test_database_url({"TEST_DATABASE_URL": url}) == url
    assert test_db.test_database_url({"TEST_DATABASE_URL": url, "SINGULARITY_TEST_DB": "bogus"}) == url
    assert test_db.test_database_url({"TEST_DATABASE_URL": url, "SINGULARITY_TEST_DB": "docker"}) == url


def test_test_database_url_defaults_to_the_embedded_server():
    assert test_db.test_database_url({}) == ""
    assert test_db.test_database_url({"SINGULARITY_TEST_DB": ""}) == ""
    assert test_db.test_database_url({"SINGULARITY_TEST_DB": "embedded", "TEST_DATABASE_URL": ""}) == ""
    # A development DATABASE_URL is never used for tests.
    assert test_db.test_database_url({"DATABASE_URL": "postgresql://u:p@prod/app"}) == ""


@pytest.mark.parametrize("mode", ["bogus", "Docker", "EMBEDDED", "postgres"])
def test_unknown_test_db_mode_raises_naming_it(mode):
    with pytest.raises(test_db.TestDatabaseError) as excinfo:
        test_db.test_database_url({"SINGULARITY_TEST_DB": mode})
    assert f"SINGULARITY_TEST_DB={mode!r}" in str(excinfo.value)
    assert "embedded" in str(excinfo.value) and "docker" in str(excinfo.value)


def test_docker_mode_without_a_docker_engine_fails_at_once():
    if os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists():
        pytest.skip("a Docker engine may answer on this machine; the test needs one that has none")
    started = time.monotonic()
    with pytest.raises(test_db.TestDatabaseError) as excinfo:
        test_db.test_database_url({"SINGULARITY_TEST_DB": "docker"})
    assert time.monotonic() - started < 10
    assert "Docker" in str(excinfo.value)
    assert "SINGULARITY_TEST_DB" in str(excinfo.value)
