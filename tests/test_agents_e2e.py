"""Agents end to end against real workers: approve, reject, expire, answer, restart, conflict, bad output.

Each test runs ``run_workers`` with every consumer (nexus, observer, the HITL client, the agent_run flow)
and decides through observer's own decision functions, as the approver's page does.
"""
import pytest

from nexus.models import Route
from observer import decisions
from singularity.agents import workspace
from singularity.agents.base import registered_agents
from singularity.agents.runner import start_run
from singularity.rules.models import PublishedRule
from tests.agents_support import (
    approve_and_time,
    expire_pending,
    finish,
    refreshed,
    seed_cost_history,
    wait_for_hitl,
)
from tests.fakes.openai_server import Reply, response_body

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

SAMPLE = 'def greet(name):\n    return "Hello, " + name   \n'


@pytest.fixture
def root(tmp_path, settings):
    settings.AGENTS_WORKSPACE_ROOT = tmp_path / "workspace"
    settings.AGENTS_WORKSPACE_ROOT.mkdir()
    (settings.AGENTS_WORKSPACE_ROOT / "greet.py").write_text(SAMPLE)
    return settings.AGENTS_WORKSPACE_ROOT


@pytest.fixture
def worker(clean_queues, start_worker, root):
    """Start a worker that sees the same workspace; call it again to start another."""
    def start(**env):
        return start_worker(AGENTS_WORKSPACE_ROOT=str(root), **env)

    start.first = start()
    return start


def agent_inputs(root) -> dict:
    """An input per registered agent that leads it to a proposal."""
    from singularity.models import JobResult, LlmRequest

    seed_cost_history()
    request = LlmRequest.objects.create(agent_id="history", task_type="code", complexity="simple", messages="x", status="failed")
    JobResult.objects.create(request=request, status="error", error_type="provider_error", error_message="boom", raw={})
    return {
        "documentation": {"path": "greet.py"},
        "code_quality": {"path": "greet.py"},
        "self_improving": {},
        "cost_optimizer": {},
    }


def test_documentation_approved_applies_diff(root, worker, approver, capsys):
    run = start_run("documentation", {"path": "greet.py"})
    approval = wait_for_hitl(run)
    proposal = refreshed(run).proposal

    finished, seconds = approve_and_time(run, approver)

    assert approval.payload["diff"].startswith("--- a/greet.py\n+++ b/greet.py\n")
    assert finished.status == "succeeded"
    assert (root / "greet.py").read_text().endswith(SAMPLE)
    assert "offline local provider" in (root / "greet.py").read_text()
    assert finished.changes["after_sha256"] == workspace.sha256((root / "greet.py").read_bytes())
    assert proposal["base_sha256"] == workspace.sha256(SAMPLE.encode())
    assert len(finished.llm_request_ids) == 1
    with capsys.disabled():
        print(f"\ndocumentation approve-to-applied: {seconds * 1000:.1f} ms")


def test_code_quality_approved_strips_whitespace(root, worker, approver):
    run = start_run("code_quality", {"path": "greet.py"})

    finished, _ = approve_and_time(run, approver)

    assert finished.status == "succeeded"
    assert (root / "greet.py").read_text() == SAMPLE.replace("   \n", "\n")


def test_file_agent_question_answered(root, worker, approver):
    run = start_run("documentation", {})
    question = wait_for_hitl(run, 1)
    decisions.answer(question.pk, approver, "greet.py")
    wait_for_hitl(run, 2)

    finished, _ = approve_and_time(run, approver)

    assert question.type == "question"
    assert finished.status == "succeeded"
    assert finished.changes["path"] == "greet.py"


def test_question_rejected_ends_run(root, worker, approver):
    run = start_run("documentation", {})
    question = wait_for_hitl(run, 1)
    decisions.reject(question.pk, approver, "not now")

    finished = finish(run)

    assert finished.status == "rejected"
    assert "not now" in finished.outcome
    assert finished.llm_request_ids == []


def test_expired_proposal_ends_run(root, worker):
    run = start_run("documentation", {"path": "greet.py"})
    wait_for_hitl(run)

    assert expire_pending() == 1
    finished = finish(run)

    assert finished.status == "expired"
    assert "expired" in finished.outcome
    assert (root / "greet.py").read_text() == SAMPLE


def test_hash_conflict_changes_nothing(root, worker, approver):
    run = start_run("documentation", {"path": "greet.py"})
    wait_for_hitl(run)
    (root / "greet.py").write_text("edited meanwhile\n")

    finished, _ = approve_and_time(run, approver)

    assert finished.status == "conflict"
    assert "changed since the diff was made" in finished.outcome
    assert (root / "greet.py").read_text() == "edited meanwhile\n"


def test_symlink_swapped_in_before_act_fails(root, worker, approver, tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text(SAMPLE)
    run = start_run("documentation", {"path": "greet.py"})
    wait_for_hitl(run)
    (root / "greet.py").unlink()
    (root / "greet.py").symlink_to(outside)

    finished, _ = approve_and_time(run, approver)

    assert finished.status == "failed"
    assert "symlink" in finished.outcome
    assert outside.read_text() == SAMPLE


def test_worker_restart_while_waiting(root, worker, approver):
    run = start_run("documentation", {"path": "greet.py"})
    approval = wait_for_hitl(run)
    assert worker.first.stop() == 0

    decisions.approve(approval.pk, approver)
    assert refreshed(run).status == "waiting_decision"
    worker()
    finished = finish(run)

    assert finished.status == "succeeded"
    assert "offline local provider" in (root / "greet.py").read_text()


def test_self_improving_publishes_rule(root, worker, approver):
    agent_inputs(root)
    run = start_run("self_improving", {})
    approval = wait_for_hitl(run)

    finished, _ = approve_and_time(run, approver)

    assert approval.payload["rule"]["namespace"] == "agents.offline"
    assert finished.status == "succeeded"
    rule = PublishedRule.objects.get(rule_id=finished.changes["rule_id"])
    assert rule.pattern["signal"] == "provider_error"


def test_self_improving_asks_without_failures(root, worker, approver):
    run = start_run("self_improving", {})
    question = wait_for_hitl(run, 1)
    decisions.answer(question.pk, approver, "deploys fail on Fridays")
    wait_for_hitl(run, 2)

    finished, _ = approve_and_time(run, approver)

    assert finished.status == "succeeded"
    assert PublishedRule.objects.get().pattern["signal"] == "deploys fail on Fridays"


def test_cost_optimizer_updates_route(root, worker, approver):
    seed_cost_history()
    run = start_run("cost_optimizer", {})
    approval = wait_for_hitl(run)

    finished, _ = approve_and_time(run, approver)

    assert approval.payload["proposed"] == {"provider": "openai", "model": "gpt-4.1-nano", "error_rate": 0.0}
    assert finished.status == "succeeded"
    route = Route.objects.get(task_type="code", complexity="simple")
    assert (route.provider, route.model) == ("openai", "gpt-4.1-nano")
    assert finished.changes["before"] == "openai:gpt-4.1-mini"


def test_cost_optimizer_without_history_does_nothing(root, worker):
    run = start_run("cost_optimizer", {})

    finished = finish(run)

    assert finished.status == "nothing_to_do"
    assert finished.llm_request_ids == []


def test_rejecting_approver_blocks_every_agent(root, worker, approver):
    inputs = agent_inputs(root)
    routes_before = list(Route.objects.values_list("task_type", "complexity", "provider", "model"))
    assert set(inputs) == set(registered_agents())

    for name in registered_agents():
        run = start_run(name, inputs[name])
        approval = wait_for_hitl(run)
        decisions.reject(approval.pk, approver, "no")
        finished = finish(run)
        assert finished.status == "rejected", name
        assert finished.changes == {}, name

    assert (root / "greet.py").read_text() == SAMPLE
    assert not PublishedRule.objects.exists()
    assert list(Route.objects.values_list("task_type", "complexity", "provider", "model")) == routes_before


@pytest.mark.parametrize(
    ("reply_text", "message"),
    [
        ("I think the file is fine.", "not JSON"),
        ('{"summary": "no content"}', "no 'content' field"),
        ('{"content": ' + __import__("json").dumps(SAMPLE) + "}", "empty diff"),
    ],
)
def test_malformed_output_fails_before_approver(root, clean_queues, start_worker, fake_openai, reply_text, message):
    from observer.models import Approval

    fake_openai.queue(Reply(200, response_body(reply_text)))
    start_worker(
        AGENTS_WORKSPACE_ROOT=str(root), LLM_PROVIDER="openai", OPENAI_BASE_URL=fake_openai.base_url, OPENAI_API_KEY="test-key"
    )
    run = start_run("documentation", {"path": "greet.py"})

    finished = finish(run)

    assert finished.status == "failed"
    assert message in finished.outcome
    assert finished.model_output == reply_text
    assert finished.approval_request_ids == []
    assert not Approval.objects.exists()


def test_waiting_run_holds_only_a_waiting_step(root, worker, approver):
    from singularity.quantum_flow.models import FlowRun, StepStatus

    run = start_run("documentation", {"path": "greet.py"})
    approval = wait_for_hitl(run)

    flow_run = FlowRun.objects.get(pk=run.run_id)
    steps = {step.name: step for step in flow_run.steps.all()}
    assert steps["propose"].status == StepStatus.WAITING
    assert (steps["propose"].wait_event, steps["propose"].wait_key) == ("hitl.decision", str(approval.request_id))
    assert steps["act"].status == StepStatus.PENDING


def test_cancelled_flow_run_cancels_agent_run(root, worker):
    from singularity.quantum_flow import cancel_run

    from observer.models import Approval
    from tests.conftest import wait_for

    run = start_run("documentation", {"path": "greet.py"})
    approval = wait_for_hitl(run)

    cancel_run(run.run_id, reason="operator stopped it")

    finished = refreshed(run)
    assert finished.status == "cancelled"
    assert finished.outcome == "The run's flow was cancelled: operator stopped it"
    assert (root / "greet.py").read_text() == SAMPLE
    # The proposal is withdrawn, so no approver is left with a decision that changes nothing.
    withdrawn = wait_for(lambda: Approval.objects.filter(pk=approval.pk, status="cancelled").first(), timeout=30)
    assert withdrawn.decision_reason == "Withdrawn by the agent: The run's flow was cancelled: operator stopped it"


def test_bench_agents_refuses_other_worker(worker):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="A run_workers process is already connected"):
        call_command("bench_agents", "--runs", "2")
