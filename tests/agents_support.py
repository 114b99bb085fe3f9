"""Helpers of the agent tests: a workspace, runs driven to their proposal, decisions by a real approver."""
import time
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from observer import decisions
from observer.models import Approval
from singularity.agents.models import AgentRun
from singularity.agents.completion import wait_until_finished
from tests.conftest import wait_for

WAIT = 30  # seconds; generous for two shared cores


def refreshed(run: AgentRun) -> AgentRun:
    return AgentRun.objects.get(pk=run.pk)


def wait_for_hitl(run: AgentRun, count: int = 1) -> Approval:
    """Wait until the run's ``count``-th HITL request reached observer; return its Approval."""
    def arrived():
        current = refreshed(run)
        if current.is_finished:
            raise AssertionError(f"run finished before its request: {current.status}: {current.outcome}")
        if len(current.approval_request_ids) < count:
            return None
        return Approval.objects.filter(request_id=current.approval_request_ids[count - 1]).first()

    return wait_for(arrived, timeout=WAIT)


def finish(run: AgentRun) -> AgentRun:
    finished = wait_until_finished(run.run_id, WAIT)
    assert finished is not None, f"run still {refreshed(run).status} after {WAIT} s"
    return finished


def approve_and_time(run: AgentRun, approver) -> tuple[AgentRun, float]:
    """Approve the run's proposal and return the finished run and the approve-to-finished seconds."""
    approval = wait_for_hitl(run, len(refreshed(run).approval_request_ids) or 1)
    started = time.perf_counter()
    decisions.approve(approval.pk, approver)
    finished = finish(run)
    return finished, time.perf_counter() - started


def expire_pending() -> int:
    """Close every pending approval as expired, as observer's schedule does after the deadline."""
    return decisions.expire_due(now=timezone.now() + timedelta(days=3650))


def seed_cost_history() -> None:
    """Store results that make gpt-4.1-nano a reliable, cheaper model for code/simple than gpt-4.1-mini."""
    import uuid

    from nexus.models import Route
    from singularity.models import JobResult, LlmRequest

    Route.objects.update_or_create(
        task_type="code", complexity="simple", defaults={"provider": "openai", "model": "gpt-4.1-mini"}
    )
    for task_type, model, count in (("code", "gpt-4.1-mini", 6), ("summarization", "gpt-4.1-nano", 6)):
        for _ in range(count):
            request = LlmRequest.objects.create(
                request_id=uuid.uuid4(), agent_id="history", task_type=task_type, complexity="simple",
                messages="x", status="completed",
            )
            JobResult.objects.create(
                request=request, status="ok", response="ok", provider="openai", model=model,
                cost_usd=Decimal("0.001"), raw={},
            )
