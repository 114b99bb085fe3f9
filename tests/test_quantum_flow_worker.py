"""Flow step workers as ``manage.py run_workers`` processes: a crash mid-step, and pipeline switches.

The worker processes load the test flows through ``QUANTUM_FLOW_MODULES``.
"""
import pytest

from singularity.quantum_flow import start_flow
from singularity.quantum_flow.models import AttemptStatus, FlowRun, RunStatus, StepAttempt
from tests.conftest import wait_for
from tests.quantum_flow_flows import EFFECTS_QUEUE, FLOW_MODULE, CrashFlow, DiamondFlow, RetryFlow
from tests.test_worker_process import run_manage

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FLOW_ENV = {"QUANTUM_FLOW_MODULES": FLOW_MODULE, "WORKER_VISIBILITY_TIMEOUT_SECONDS": "2"}
RUN_TIMEOUT = 30  # seconds; generous for a loaded machine


def test_killed_worker_run_finished_by_next(flow_queues, start_worker):
    first = start_worker("--only", CrashFlow.queue_name(), **FLOW_ENV)
    run = start_flow(CrashFlow, {"sleep": 60})

    wait_for(
        lambda: StepAttempt.objects.filter(step__run=run, step__name="slow", status=AttemptStatus.RUNNING).exists(),
        timeout=RUN_TIMEOUT,
    )
    first.popen.kill()  # SIGKILL in the middle of the slow step
    first.popen.wait(10)
    start_worker("--only", CrashFlow.queue_name(), **FLOW_ENV)

    wait_for(lambda: FlowRun.objects.get(pk=run.pk).status != RunStatus.RUNNING, timeout=RUN_TIMEOUT)
    assert FlowRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED
    for name in ("first", "slow", "last"):
        succeeded = StepAttempt.objects.filter(step__run=run, step__name=name, status=AttemptStatus.SUCCEEDED)
        assert succeeded.count() == 1, f"step {name} completed {succeeded.count()} times"
    slow = list(StepAttempt.objects.filter(step__run=run, step__name="slow").order_by("number"))
    assert [attempt.status for attempt in slow] == [AttemptStatus.ABANDONED, AttemptStatus.SUCCEEDED]
    assert slow[0].worker != slow[1].worker
    effects = [message.body["step"] for message in flow_queues.read(EFFECTS_QUEUE, vt=0, qty=100)]
    assert sorted(effects) == ["first", "last", "slow"], "each step's writes must commit exactly once"


def test_worker_runs_diamond(flow_queues, start_worker):
    start_worker("--only", DiamondFlow.queue_name(), **FLOW_ENV)

    run = start_flow(DiamondFlow, {"n": 7})

    wait_for(lambda: FlowRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED, timeout=RUN_TIMEOUT)
    assert StepAttempt.objects.filter(step__run=run, step__name="d").count() == 1


def test_retry_wakes_before_poll_interval(flow_queues, start_worker):
    """A worker whose poll interval is a minute still runs a retry after its short backoff."""
    start_worker("--only", RetryFlow.queue_name(), **FLOW_ENV, WORKER_POLL_INTERVAL_SECONDS="60")

    run = start_flow(RetryFlow, {"succeed_on": 3})

    # Backoffs of 0.2 and 0.4 s: the run ends long before one poll interval.
    wait_for(lambda: FlowRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED, timeout=RUN_TIMEOUT)
    attempts = StepAttempt.objects.filter(step__run=run, step__name="flaky").order_by("number")
    assert [attempt.retry_delay_s for attempt in attempts] == [0.2, 0.4, None]


def test_list_shows_flow_consumer(test_db_url):
    completed = run_manage(test_db_url, "run_workers", "--list")

    assert completed.returncode == 0, completed.stderr
    assert "flow_nexus_llm\tqueue=flow_nexus_llm\thandler=singularity.quantum_flow.worker.StepTaskHandler" in completed.stdout


def test_disabled_pipeline_skipped(flow_queues, start_worker):
    worker = start_worker(
        "--only", f"ai_results,{DiamondFlow.queue_name()}", PGFLOW_TEST_DIAMOND_ENABLED="false", **FLOW_ENV
    )

    assert "Skipping consumer flow_test_diamond: PGFLOW_TEST_DIAMOND_ENABLED is false." in worker.output
    assert "Workers running: ai_results." in worker.output


def test_every_selected_consumer_disabled_fails(test_db_url, monkeypatch):
    monkeypatch.setenv("PGFLOW_NEXUS_LLM_ENABLED", "false")

    completed = run_manage(test_db_url, "run_workers", "--only", "flow_nexus_llm")

    assert completed.returncode != 0
    assert "Every selected consumer is switched off" in completed.stderr


def test_invalid_pipeline_switch_named(test_db_url, monkeypatch):
    monkeypatch.setenv("PGFLOW_NEXUS_LLM_ENABLED", "maybe")

    completed = run_manage(test_db_url, "run_workers", "--only", "flow_nexus_llm")

    assert completed.returncode != 0
    assert "error: PGFLOW_NEXUS_LLM_ENABLED='maybe' is invalid: use true or false" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize(
    "setting, message",
    [
        ("tests.no_such_flows", "error: QUANTUM_FLOW_MODULES names 'tests.no_such_flows', which cannot be imported"),
        (".relative", "error: QUANTUM_FLOW_MODULES contains '.relative': give absolute dotted module paths"),
    ],
)
def test_bad_flow_module_named(test_db_url, monkeypatch, setting, message):
    monkeypatch.setenv("QUANTUM_FLOW_MODULES", setting)

    completed = run_manage(test_db_url, "run_workers", "--list")

    assert completed.returncode == 1
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr


def test_flow_module_entries_stripped(test_db_url, monkeypatch):
    monkeypatch.setenv("QUANTUM_FLOW_MODULES", f"{FLOW_MODULE}, {FLOW_MODULE}")

    completed = run_manage(test_db_url, "run_workers", "--list")

    assert completed.returncode == 0, completed.stderr
    assert "flow_test_diamond" in completed.stdout


def test_failing_import_inside_module_keeps_traceback(test_db_url, monkeypatch):
    monkeypatch.setenv("QUANTUM_FLOW_MODULES", "tests.broken_flow_imports")

    completed = run_manage(test_db_url, "run_workers", "--list")

    assert completed.returncode != 0
    assert "No module named 'no_such_dependency_for_tests'" in completed.stderr
    assert "QUANTUM_FLOW_MODULES names" not in completed.stderr
