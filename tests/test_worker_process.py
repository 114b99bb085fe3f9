"""``manage.py run_workers`` as a real child process: consumer selection, signals, bad messages.

Every test runs against the committed test database, because the worker is another process.
"""
import json
import os
import signal
import subprocess
import sys

import pytest
from django.db import connection

from singularity.llm.service import await_responses_result, dispatch_request
from singularity.messaging.queues import AI_REQUESTS, AI_RESULTS, DEAD_LETTERS
from tests.conftest import BASE_DIR, wait_for
from tests.fakes.openai_server import Reply, response_body

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EXIT_TIMEOUT = 30  # seconds for a worker to exit after a signal; generous for a loaded machine.


def run_manage(test_db_url: str, *args: str) -> subprocess.CompletedProcess:
    """Run a short ``manage.py`` command against the test database and collect its output."""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "singularity.settings", "DATABASE_URL": test_db_url}
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def queue_messages(table: str, where: str, params: list) -> list[dict]:
    """Return the rows of ``pgmq.<table>`` that match ``where``, with ``read_ct`` and the body."""
    quoted = connection.ops.quote_name(table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT msg_id, read_ct, message FROM pgmq.{quoted} WHERE {where}", params)
        rows = cursor.fetchall()
    return [
        {"msg_id": msg_id, "read_ct": read_ct, "body": json.loads(body) if isinstance(body, str) else body}
        for msg_id, read_ct, body in rows
    ]


def by_request_id(table: str, request_id: str) -> list[dict]:
    return queue_messages(table, "message->>'request_id' = %s", [request_id])


def dead_letters_for(queue: str, msg_id: int) -> list[dict]:
    return queue_messages(
        f"q_{DEAD_LETTERS}", "message->>'queue' = %s AND (message->>'msg_id')::bigint = %s", [queue, msg_id]
    )


def openai_environment(fake_openai) -> dict:
    return {"LLM_PROVIDER": "openai", "OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_API_KEY": "test"}


# --- choosing consumers ----------------------------------------------------------------------


def test_list_shows_consumers(test_db_url):
    completed = run_manage(test_db_url, "run_workers", "--list")

    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert any(line.startswith("ai_requests\tqueue=ai_requests\t") for line in lines), completed.stdout
    assert any(line.startswith("ai_results\tqueue=ai_results\t") for line in lines), completed.stdout


def test_list_names_handlers(test_db_url):
    completed = run_manage(test_db_url, "run_workers", "--list")

    assert "handler=nexus.consumers.handle_request" in completed.stdout
    assert "handler=singularity.llm.consumers.store_result" in completed.stdout


def test_only_unknown_consumer_fails(test_db_url):
    completed = run_manage(test_db_url, "run_workers", "--only", "bogus")

    assert completed.returncode != 0
    assert "Unknown consumer(s) in --only: bogus" in completed.stderr
    known = completed.stderr.split("Known consumers:", 1)[1]
    assert "ai_requests" in known
    assert "ai_results" in known


def test_only_unknown_among_known_fails(test_db_url):
    completed = run_manage(test_db_url, "run_workers", "--only", "ai_requests,bogus")

    assert completed.returncode != 0
    assert "Unknown consumer(s) in --only: bogus" in completed.stderr


def test_only_accepts_comma_list(clean_queues, start_worker):
    worker = start_worker("--only", "ai_results,ai_requests")

    assert "Workers running: ai_requests, ai_results." in worker.output


def test_only_runs_named_consumer(clean_queues, start_worker):
    from singularity.models import JobResult

    worker = start_worker("--only", "ai_requests")
    assert "Workers running: ai_requests." in worker.output

    request_id = dispatch_request("hello", task_type="general", complexity="simple", agent_id="only-test")
    wait_for(lambda: by_request_id(f"q_{AI_RESULTS}", request_id), timeout=20)
    # Stop the worker first: it waits for its consumer threads, so no consumer is left that could
    # still take the result afterwards.
    assert worker.stop() == 0, worker.output

    [result] = by_request_id(f"q_{AI_RESULTS}", request_id)
    assert result["read_ct"] == 0, "an ai_results consumer read the result"
    assert result["body"]["status"] == "ok"
    assert not JobResult.objects.filter(request_id=request_id).exists()


# --- stopping --------------------------------------------------------------------------------


def test_sigterm_finishes_message_in_hand(clean_queues, start_worker, fake_openai):
    fake_openai.queue(Reply(200, response_body("slow answer"), delay=2))
    worker = start_worker("--only", "ai_requests", **openai_environment(fake_openai))
    request_id = dispatch_request("hello", task_type="general", complexity="simple", agent_id="sigterm-test")

    # Once the fake server has received the request, the worker is inside the handler.
    wait_for(lambda: fake_openai.requests, timeout=20)
    worker.popen.send_signal(signal.SIGTERM)
    returncode = worker.popen.wait(EXIT_TIMEOUT)
    worker.stop()

    assert returncode == 0, worker.output
    assert "Workers stopped." in worker.output

    [result] = by_request_id(f"q_{AI_RESULTS}", request_id)
    assert result["body"]["status"] == "ok"
    assert result["body"]["response"] == "slow answer"
    assert by_request_id(f"a_{AI_REQUESTS}", request_id), "the request was not archived"
    assert not by_request_id(f"q_{AI_REQUESTS}", request_id), "the request is still queued"
    assert len(fake_openai.requests) == 1


def test_sigterm_when_idle_exits_zero(clean_queues, start_worker):
    worker = start_worker()

    worker.popen.send_signal(signal.SIGTERM)
    returncode = worker.popen.wait(EXIT_TIMEOUT)
    worker.stop()

    assert returncode == 0, worker.output
    assert "Workers stopped." in worker.output


def test_sigint_exits_zero(clean_queues, start_worker):
    worker = start_worker()

    worker.popen.send_signal(signal.SIGINT)
    returncode = worker.popen.wait(EXIT_TIMEOUT)
    worker.stop()

    assert returncode == 0, worker.output
    assert "Workers stopped." in worker.output


# --- a bad message does not stop the worker --------------------------------------------------


def test_bad_body_dead_lettered_then_valid_served(clean_queues, start_worker):
    worker = start_worker()
    msg_id = clean_queues.send(AI_REQUESTS, {"oops": 1})

    [letter] = wait_for(lambda: dead_letters_for(AI_REQUESTS, msg_id), timeout=20)
    assert letter["body"]["reason"] == "invalid_body"
    assert "request_id" in letter["body"]["error"], letter["body"]["error"]
    assert letter["body"]["body"] == {"oops": 1}
    assert letter["body"]["attempts"] == 1

    request_id = dispatch_request("still there?", task_type="general", complexity="simple", agent_id="done-when")
    result = await_responses_result(request_id, timeout=20)

    assert result.ok
    assert result.provider == "local"
    assert worker.popen.poll() is None, worker.output
