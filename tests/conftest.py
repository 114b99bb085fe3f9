"""Fixtures shared by the suite: the pgmq manager, clean queues, worker processes, a fake provider."""
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from singularity.database import database_url
from singularity.messaging.queues import PROJECT_QUEUES
from tests.fakes.openai_server import FakeResponsesServer

BASE_DIR = Path(__file__).resolve().parent.parent
WORKER_READY_LINE = "Workers running"
WORKER_START_TIMEOUT = 30  # seconds; the first start imports Django and the SDKs


@pytest.fixture
def queues():
    """The pgmq manager (``Queue.objects``)."""
    from singularity.models import Queue

    return Queue.objects


@pytest.fixture
def clean_queues(queues):
    """Empty the project's queues so a test sees only its own messages."""
    for name in PROJECT_QUEUES:
        queues.purge(name)
    yield queues


@pytest.fixture
def test_db_url(db) -> str:
    """A URL for the test database that a child process can use as DATABASE_URL."""
    return database_url(connection.settings_dict)


@pytest.fixture
def fake_openai():
    server = FakeResponsesServer().start()
    yield server
    server.stop()


class WorkerProcess:
    """A ``manage.py run_workers`` child process with its output collected in the background."""

    def __init__(self, popen: subprocess.Popen):
        self.popen = popen
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))
            if WORKER_READY_LINE in line:
                self.ready.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, timeout: float = 20) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
        returncode = self.popen.wait(timeout)
        self._reader.join(5)
        return returncode


@pytest.fixture
def start_worker(test_db_url):
    """Start ``run_workers`` against the test database; extra keyword arguments become environment variables."""
    started: list[WorkerProcess] = []

    def start(*args: str, **env: str) -> WorkerProcess:
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "singularity.settings",
            "DATABASE_URL": test_db_url,
            "PYTHONUNBUFFERED": "1",
            "LLM_PROVIDER": "local",
            "WORKER_BACKOFF_BASE_SECONDS": "0.05",
            "WORKER_POLL_INTERVAL_SECONDS": "1",
            "WORKER_MAX_ATTEMPTS": "3",
            "LOG_LEVEL": "INFO",
            **env,
        }
        popen = subprocess.Popen(
            [sys.executable, str(BASE_DIR / "manage.py"), "run_workers", *args],
            cwd=BASE_DIR,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        worker = WorkerProcess(popen)
        started.append(worker)
        if not worker.ready.wait(WORKER_START_TIMEOUT):
            worker.stop()
            pytest.fail(f"run_workers did not start within {WORKER_START_TIMEOUT} s:\n{worker.output}")
        return worker

    yield start
    for worker in started:
        try:
            worker.stop()
        except subprocess.TimeoutExpired:
            worker.popen.kill()


def wait_for(condition, timeout: float = 10.0, interval: float = 0.02):
    """Return ``condition()`` once it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture(scope="session", autouse=True)
def close_listener_before_teardown(django_db_setup, django_db_blocker):
    """Close this process's LISTEN connection so pytest-django can drop the test database."""
    yield
    from singularity.messaging.notifications import get_hub

    get_hub().stop()


# --- Observer (human-in-the-loop approvals) -------------------------------------------------------


@pytest.fixture
def approver(db, django_user_model):
    """A staff user in the Approvers group, as ``manage.py createapprover`` makes one."""
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType

    from observer.permissions import ensure_approvers_group

    # A transactional test's flush empties the group the migration created, so make sure it exists.
    group = ensure_approvers_group(Group, Permission, ContentType)
    user = django_user_model.objects.create_user("alice", password="approver-pass-1", is_staff=True)
    user.groups.add(group)
    return user


@pytest.fixture
def make_approval(db):
    """Create a pending ``Approval`` directly, as the ingest consumer would; keyword arguments override fields."""
    import uuid

    from observer.models import Approval, ApprovalHistory

    def make(**fields):
        values = {
            "request_id": uuid.uuid4(),
            "type": "approval",
            "agent_id": "deploy-bot",
            "task_type": "deploy",
            "summary": "Deploy release 42",
            "payload": {"release": 42},
            "reply_to": "observer_decisions",
            **fields,
        }
        approval = Approval.objects.create(**values)
        ApprovalHistory.objects.create(approval=approval, from_status="", to_status="pending")
        return approval

    return make


# --- quantum_flow -----------------------------------------------------------------------------------


@pytest.fixture
def flow_queues(queues):
    """Create and empty the queues of the test flows and their effects queue; return the manager."""
    from singularity.quantum_flow import registered_flows
    from tests.quantum_flow_flows import EFFECTS_QUEUE

    names = [flow.queue_name() for flow in registered_flows().values()] + [EFFECTS_QUEUE]
    for name in names:
        queues.create(name)
        queues.purge(name)
    return queues


@pytest.fixture
def fake_anthropic():
    """A fake Anthropic Messages API on 127.0.0.1."""
    from tests.fakes.anthropic_server import FakeMessagesServer

    server = FakeMessagesServer().start()
    yield server
    server.stop()
