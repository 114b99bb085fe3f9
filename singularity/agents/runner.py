"""The agent runner: start a run, and advance it by one step for each ``agent_runs`` message.

Each step runs inside the consumer's transaction, so the run row, the LLM or HITL request it sends
and the acknowledgement of the message commit together. A step never blocks on the LLM or a person:
it parks the run (``waiting``) and returns. Steps, in order:

1. start: ask the agent's question if it has one (wait for the answer), else think;
2. think: send the LLM request and wait for its result;
3. propose: validate the model's response and send it for approval, then wait for the decision;
4. act: only after an approved decision, with an ``Approved`` token minted from it.
"""
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from singularity.hitl.client import submit_approval, submit_question
from singularity.hitl.contracts import DecisionStatus
from singularity.llm.service import dispatch_request

from . import waiting
from .approval import NotApproved, mint_approved
from .base import ActConflict, ActFailed, Agent, AgentOutputError, InvalidAgentInput, get_agent
from .models import AgentRun, RunStatus, Step

logger = logging.getLogger(__name__)

# The final run status for each decision other than ``approved``.
CLOSING_STATUSES = {
    DecisionStatus.REJECTED: RunStatus.REJECTED,
    DecisionStatus.EXPIRED: RunStatus.EXPIRED,
    DecisionStatus.CANCELLED: RunStatus.CANCELLED,
}


def start_run(agent_name: str, data: dict | None = None) -> AgentRun:
    """Create a run of ``agent_name`` and queue its first step; return the row.

    Raises ``UnknownAgent`` or ``InvalidAgentInput``, in which case nothing is written.
    """
    agent = get_agent(agent_name)
    if data is not None and not isinstance(data, dict):
        raise InvalidAgentInput(f"Agent input must be a JSON object, not {type(data).__name__}.")
    normalised = agent.validate_input(dict(data or {}))
    with transaction.atomic():
        run = AgentRun.objects.create(agent=agent.name, input=normalised)
        waiting.enqueue(run.run_id, waiting.Event.START)
    logger.info("agents.run_started", extra={"run_id": str(run.run_id), "agent_id": agent.agent_id})
    return run


def advance(run_id: str, event: str, ref: str) -> bool:
    """Run the step that ``event`` unblocks; return False when the message is stale or the run is gone.

    The caller must be inside a transaction. The run row is locked, so two deliveries of one message cannot
    both act, and a message for a wait the run has already left changes nothing.
    """
    run = AgentRun.objects.select_for_update().filter(run_id=run_id).first()
    if run is None:
        logger.warning("agents.unknown_run", extra={"run_id": run_id})
        return False
    if run.is_finished:
        return False
    agent = get_agent(run.agent)
    if event == waiting.Event.START:
        if run.step != Step.START:
            return False
        _start(run, agent)
        return True
    if not waiting.is_awaited(run, event, ref):
        logger.info("agents.stale_message_ignored", extra={"run_id": run_id, "event": event, "ref": ref})
        return False
    waiting.clear_wait(run)
    _STEP_HANDLERS[run.step](run, agent)
    return True


def fail_run(run_id: str, message: str) -> None:
    """End a run as failed after its step raised on the last attempt."""
    run = AgentRun.objects.select_for_update().filter(run_id=run_id).first()
    if run is not None and not run.is_finished:
        _finish(run, RunStatus.FAILED, message)


def _start(run: AgentRun, agent: Agent) -> None:
    question = agent.question(run)
    if question is None:
        _think(run, agent)
        return
    handle = submit_question(
        agent_id=agent.agent_id,
        question=question.text,
        context=question.context,
        metadata={"run_id": str(run.run_id), "agent": agent.name},
        expires_in=_expires_in(),
    )
    run.approval_request_ids = [*run.approval_request_ids, handle.request_id]
    run.step = Step.ASK
    waiting.wait_for_decision(run, handle.request_id)
    run.save()


def _after_question(run: AgentRun, agent: Agent) -> None:
    decision = _decision(run.approval_request_ids[-1])
    if decision.decision != DecisionStatus.ANSWERED:
        _close_on_decision(run, decision, "question")
        return
    run.state = {**run.state, "answer": decision.answer}
    _think(run, agent)


def _think(run: AgentRun, agent: Agent) -> None:
    try:
        messages = agent.prompt(run)
    except (InvalidAgentInput, ActFailed) as exc:
        _finish(run, RunStatus.FAILED, str(exc))
        return
    if messages is None:
        _finish(run, RunStatus.NOTHING_TO_DO, "The agent found nothing to ask the model about.")
        return
    request_id = dispatch_request(
        messages,
        task_type=agent.task_type,
        complexity=agent.complexity,
        agent_id=agent.agent_id,
        max_tokens=agent.max_tokens,
    )
    run.llm_request_ids = [*run.llm_request_ids, request_id]
    run.step = Step.THINK
    waiting.wait_for_llm(run, request_id)
    run.save()


def _after_think(run: AgentRun, agent: Agent) -> None:
    from singularity.models import JobResult

    result = JobResult.objects.get(request_id=run.llm_request_ids[-1])
    if not result.ok:
        _finish(run, RunStatus.FAILED, f"The LLM request failed: {result.error_type}: {result.error_message}")
        return
    try:
        proposal = agent.propose(run, result.response)
    except AgentOutputError as exc:
        run.model_output = result.response
        _finish(run, RunStatus.FAILED, f"Invalid model output: {exc}")
        return
    except (InvalidAgentInput, ActFailed) as exc:
        _finish(run, RunStatus.FAILED, str(exc))
        return
    if proposal is None:
        _finish(run, RunStatus.NOTHING_TO_DO, "The agent found nothing to propose.")
        return
    handle = submit_approval(
        agent_id=agent.agent_id,
        task_type=agent.name,
        payload=proposal.payload,
        summary=proposal.summary[:1000],
        metadata={"run_id": str(run.run_id), "agent": agent.name, "llm_request_id": run.llm_request_ids[-1]},
        expires_in=_expires_in(),
    )
    run.proposal = proposal.payload
    run.state = {**run.state, **proposal.state}
    run.proposal_request_id = handle.request_id
    run.approval_request_ids = [*run.approval_request_ids, handle.request_id]
    run.step = Step.PROPOSE
    waiting.wait_for_decision(run, handle.request_id)
    run.save()


def _after_decision(run: AgentRun, agent: Agent) -> None:
    decision = _decision(str(run.proposal_request_id))
    run.decided_at = decision.decided_at
    if decision.decision != DecisionStatus.APPROVED:
        _close_on_decision(run, decision, "proposal")
        return
    try:
        approved = mint_approved(run)
    except NotApproved as exc:
        _finish(run, RunStatus.FAILED, str(exc))
        return
    run.step = Step.ACT
    try:
        result = agent.act(run, approved)
    except ActConflict as exc:
        _finish(run, RunStatus.CONFLICT, str(exc))
        return
    except (ActFailed, InvalidAgentInput) as exc:
        _finish(run, RunStatus.FAILED, str(exc))
        return
    run.changes = result.changes
    _finish(run, RunStatus.SUCCEEDED, result.outcome)


def _close_on_decision(run: AgentRun, decision, what: str) -> None:
    status = CLOSING_STATUSES.get(decision.decision, RunStatus.FAILED)
    who = f" by {decision.decided_by}" if decision.decided_by else ""
    reason = f": {decision.reason}" if decision.reason else ""
    _finish(run, status, f"The {what} was {decision.decision}{who}{reason}")


def _finish(run: AgentRun, status: str, outcome: str) -> None:
    run.status = status
    run.step = Step.DONE
    run.outcome = outcome
    run.finished_at = timezone.now()
    waiting.clear_wait(run)
    run.save()
    waiting.notify_finished(run)
    level = logging.INFO if status in (RunStatus.SUCCEEDED, RunStatus.NOTHING_TO_DO) else logging.WARNING
    logger.log(level, "agents.run_finished", extra={"run_id": str(run.run_id), "agent_id": run.agent, "status": status})


def _decision(request_id: str):
    from singularity.hitl.models import HitlDecision

    return HitlDecision.objects.get(request_id=request_id)


def _expires_in() -> timedelta | None:
    seconds = settings.AGENTS_APPROVAL_EXPIRES_SECONDS
    return timedelta(seconds=seconds) if seconds > 0 else None


# The step a run is parked in decides what its wake-up message continues with.
_STEP_HANDLERS = {
    Step.ASK: _after_question,
    Step.THINK: _after_think,
    Step.PROPOSE: _after_decision,
}
