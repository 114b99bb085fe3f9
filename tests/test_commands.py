"""The ask and queues management commands."""
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pgmq.install import get_embedded_sql_version

from singularity.messaging.queues import DEAD_LETTERS


def run(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


@pytest.mark.django_db
def test_queues_status_shows_install_and_queues(clean_queues):
    output = run("queues", "status")

    assert f"pgmq {get_embedded_sql_version()}" in output
    assert "SQL bundled with the pgmq Python package" in output
    for name in ("ai_requests", "ai_results", "dead_letters"):
        assert name in output


@pytest.mark.django_db
def test_queues_dead_letters_lists_reason(clean_queues):
    clean_queues.send(DEAD_LETTERS, {"queue": "ai_requests", "reason": "invalid_body", "error": "missing request_id"})

    output = run("queues", "dead-letters")

    assert "from ai_requests: invalid_body: missing request_id" in output


@pytest.mark.django_db
def test_ask_without_worker_fails_with_hint(clean_queues):
    with pytest.raises(CommandError, match="No worker is connected"):
        run("ask", "hello", timeout=0.5)


@pytest.mark.django_db
def test_ask_rejects_bad_timeout():
    with pytest.raises(CommandError, match="--timeout -1"):
        run("ask", "hello", timeout=-1)


@pytest.mark.django_db(transaction=True)
@pytest.mark.e2e
def test_ask_prints_answer(clean_queues, start_worker):
    start_worker()

    output = run("ask", "hello", timeout=20)

    assert "offline local provider" in output
    assert "request_id:" in output
    assert "tokens:" in output
    assert "latency:" in output


@pytest.mark.django_db
@pytest.mark.parametrize("timeout", ["nan", "inf"])
def test_ask_rejects_non_finite_timeout(timeout):
    with pytest.raises(CommandError, match="finite"):
        run("ask", "hello", timeout=float(timeout))


def test_run_workers_rejects_empty_only():
    with pytest.raises(CommandError, match="empty consumer"):
        run("run_workers", only=[""])


@pytest.mark.django_db
def test_queues_dead_letters_shows_body(clean_queues):
    clean_queues.send(DEAD_LETTERS, {"queue": "ai_requests", "reason": "invalid_body", "error": "x", "body": {"oops": 1}})

    output = run("queues", "dead-letters", "--body")

    assert 'body: {"oops": 1}' in output


def test_percentile_line_one_sample():
    from singularity.management.benchmarking import percentile_line

    line = percentile_line("one", [4.0])

    assert "n=1" in line
    assert "p50=   4.00 ms" in line
    assert "max=   4.00 ms" in line


@pytest.mark.django_db(transaction=True)
def test_benchmark_worker_exit_reported_at_once(monkeypatch):
    from singularity.management.benchmarking import start_worker

    monkeypatch.setenv("PGFLOW_NEXUS_LLM_ENABLED", "maybe")

    with pytest.raises(CommandError, match=r"(?s)exited with status 1 before it started:.*PGFLOW_NEXUS_LLM_ENABLED='maybe' is invalid"):
        start_worker("--only", "flow_nexus_llm")
