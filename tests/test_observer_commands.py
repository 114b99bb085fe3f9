"""``manage.py createapprover`` and ``scripts/setup-database.sh``."""
import os
import subprocess
import uuid

import psycopg
import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import connection

from observer.permissions import APPROVERS_GROUP
from tests.conftest import BASE_DIR


def run_createapprover(*args) -> str:
    from io import StringIO

    output = StringIO()
    call_command("createapprover", *args, stdout=output)
    return output.getvalue()


@pytest.mark.django_db
def test_createapprover_creates(monkeypatch, django_user_model):
    monkeypatch.setenv("APPROVER_PASSWORD", "a-long-approver-pass-9")

    output = run_createapprover("erin", "--email", "erin@example.org", "--password-from-env")

    user = django_user_model.objects.get(username="erin")
    assert "Created approver 'erin'" in output
    assert user.is_staff
    assert user.check_password("a-long-approver-pass-9")
    assert user.has_perm("observer.decide_approval")
    assert user.groups.filter(name=APPROVERS_GROUP).exists()


@pytest.mark.django_db
def test_createapprover_no_input(django_user_model):
    output = run_createapprover("frank", "--no-input", "--no-staff")

    user = django_user_model.objects.get(username="frank")
    assert "no usable password" in output
    assert not user.has_usable_password()
    assert not user.is_staff
    assert user.has_perm("observer.decide_approval")


@pytest.mark.django_db
def test_createapprover_promotes(django_user_model):
    django_user_model.objects.create_user("gina", password="x")

    first = run_createapprover("gina")
    second = run_createapprover("gina")

    assert "Promoted existing user 'gina'" in first
    assert "already an approver; nothing changed" in second
    assert django_user_model.objects.get(username="gina").is_staff


@pytest.mark.django_db
def test_createapprover_missing_env(monkeypatch):
    monkeypatch.delenv("APPROVER_PASSWORD", raising=False)

    with pytest.raises(CommandError, match="APPROVER_PASSWORD"):
        run_createapprover("hank", "--password-from-env")


@pytest.mark.django_db
def test_createapprover_weak_password(monkeypatch, django_user_model):
    monkeypatch.setenv("APPROVER_PASSWORD", "123")

    with pytest.raises(CommandError, match="invalid"):
        run_createapprover("ivy", "--password-from-env")
    assert not django_user_model.objects.filter(username="ivy").exists()


@pytest.mark.django_db
def test_createapprover_recreates_group():
    Group.objects.filter(name=APPROVERS_GROUP).delete()

    run_createapprover("jay", "--no-input")

    assert Group.objects.get(name=APPROVERS_GROUP).permissions.filter(codename="decide_approval").exists()


@pytest.mark.e2e
@pytest.mark.django_db
def test_setup_database_idempotent(test_db_url):
    """Create a fresh database on the test server through the script, twice; drop it afterwards."""
    name = f"test_setup_{uuid.uuid4().hex[:8]}"
    url = test_db_url.rsplit("/", 1)[0] + f"/{name}"
    settings = connection.settings_dict
    admin = {"host": settings["HOST"] or None, "port": settings["PORT"] or None, "user": settings["USER"] or None,
             "password": settings["PASSWORD"] or None}
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "singularity.settings"}
    try:
        first = subprocess.run(
            ["scripts/setup-database.sh"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300
        )
        second = subprocess.run(
            ["scripts/setup-database.sh"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300
        )
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **admin) as maintenance:
            maintenance.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    assert first.returncode == 0, first.stdout + first.stderr
    assert f"Created database {name!r}" in first.stdout
    assert "observer_hitl_requests" in first.stdout
    assert "Approvers group: 3 permission(s)" in first.stdout
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"Database {name!r} exists" in second.stdout
    assert "No migrations to apply" in second.stdout
