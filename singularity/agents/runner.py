"""The agent runner: every agent run is a run of the quantum_flow flow ``agent_run``.

``start_run`` creates the ``AgentRun`` row and the flow run, with the same id, in one transaction.
The flow's steps, each a transaction of the ``flow_agent_run`` step worker:

1. ask: ask the agent's question if it has one, and wait for the answer (a ``hitl.decision`` event);
2. think: send the LLM request and wait for its result (an ``llm.result`` event);
3. propose: validate the model's response, send it for approval and wait for the decision;
4. act: only after an approved decision, with an ``Approved`` token minted from the stored decision.

A waiting step holds no thread and no connection (see ``singularity.quantum_flow.events``). The
triggers that store a result or a decision deliver its event in the same transaction, which queues
the next step. Once a run reaches a final status (rejected, nothing to do, failed output), the steps
after it do nothing and the flow run completes. A step that keeps raising fails the flow run, and
``AgentRunFlow.on_run_stopped`` then ends the agent run as failed (or cancelled) with the reason.
"""
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from singularity.hitl.client import submit_approval, submit_question, withdraw_request
from singularity.hitl.contracts import DECISION_EVENT, DecisionStatus
from singularity.llm.contracts import LLM_RESULT_EVENT
from singularity.llm.service import dispatch_request
from singularity.quantum_flow import Flow, Step, StepContext, Wait, start_flow
from singularity.quantum_flow.models import RunStatus as FlowRunStatus

from . import completion
from .approval import NotApproved, mint_approved
from .base import ActConflict, ActFailed, Agent, AgentOutputError, InvalidAgentInput, get_agent
from .models import AgentRun, RunStatus
from .models import Step as RunStep

logger = logging.getLogger(__name__)

# The final run status for each decision other than ``approved``.
CLOSING_STATUSES = {
    DecisionStatus.REJECTED: RunStatus.REJECTED,
    DecisionStatus.EXPIRED: RunStatus.EXPIRED,
    DecisionStatus.CANCELLED: RunStatus.CANCELLED,
}
# How long past an approval's expiry a step waits for observer's ``expired`` decision, which its
# schedule sends a little after the deadline.
EXPIRY_GRACE_SECONDS = 300.0


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
        start_flow(AgentRunFlow, {"agent": agent.name, "input": normalised}, run_id=run.run_id)
    logger.info("agents.run_started", extra={"run_id": str(run.run_id), "agent_id": agent.agent_id})
    return run


# --- the steps ---------------------------------------------------------------------------------


def ask(context: StepContext) -> Wait | None:
    run, agent = _open(context)
    if run is None:
        return None
    question = agent.question(run)
    if question is None:
        run.save()  # question() may have filled run.state for the think step
        return None
    handle = submit_question(
        agent_id=agent.agent_id,
        question=question.text,
        context=question.context,
        metadata={"run_id": str(run.run_id), "agent": agent.name},
        expires_in=_expires_in(),
    )
    run.approval_request_ids = [*run.approval_request_ids, handle.request_id]
    run.step = RunStep.ASK
    run.status = RunStatus.WAITING_DECISION
    run.save()
    return Wait(DECISION_EVENT, str(handle.request_id), timeout=_decision_timeout())


def think(context: StepContext) -> Wait | None:
    run, agent = _open(context)
    if run is None:
        return None
    answer = context.outputs.get("ask")
    if answer is not None:
        if answer.get("decision") != DecisionStatus.ANSWERED:
            _close_on_decision(run, _decision(run.approval_request_ids[-1]), "question")
            return None
        run.state = {**run.state, "answer": answer.get("answer", "")}
    try:
        messages = agent.prompt(run)
    except (InvalidAgentInput, ActFailed) as exc:
        _finish(run, RunStatus.FAILED, str(exc))
        return None
    if messages is None:
        _finish(run, RunStatus.NOTHING_TO_DO, "The agent found nothing to ask the model about.")
        return None
    request_id = dispatch_request(
        messages,
        task_type=agent.task_type,
        complexity=agent.complexity,
        agent_id=agent.agent_id,
        max_tokens=agent.max_tokens,
    )
    run.llm_request_ids = [*run.llm_request_ids, str(request_id)]
    run.step = RunStep.THINK
    run.status = RunStatus.WAITING_LLM
    run.save()
    llm_timeout = settings.AGENTS_LLM_TIMEOUT_SECONDS
    return Wait(LLM_RESULT_EVENT, str(request_id), timeout=llm_timeout if llm_timeout > 0 else None)


def propose(context: StepContext) -> Wait | None:
    from singularity.models import JobResult

    run, agent = _open(context)
    if run is None or context.outputs.get("think") is None:
        return None
    result = JobResult.objects.get(request_id=run.llm_request_ids[-1])
    if not result.ok:
        _finish(run, RunStatus.FAILED, f"The LLM request failed: {result.error_type}: {result.error_message}")
        return None
    try:
        proposal = agent.propose(run, result.response)
    except AgentOutputError as exc:
        run.model_output = result.response
        _finish(run, RunStatus.FAILED, f"Invalid model output: {exc}")
        return None
    except (InvalidAgentInput, ActFailed) as exc:
        _finish(run, RunStatus.FAILED, str(exc))
        return None
    if proposal is None:
        _finish(run, RunStatus.NOTHING_TO_DO, "The agent found nothing to propose.")
        return None
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
    run.approval_request_ids = [*run.approval_request_ids, str(handle.request_id)]
    run.step = RunStep.PROPOSE
    run.status = RunStatus.WAITING_DECISION
    run.save()
    return Wait(DECISION_EVENT, str(handle.request_id), timeout=_decision_timeout())


def act(context: StepContext) -> dict | None:
    run, agent = _open(context)
    if run is None or context.outputs.get("propose") is None:
        return None
    # The stored decision, not the event's payload, decides: it is the record the token is minted from.
    decision = _decision(str(run.proposal_request_id))
    run.decided_at = decision.decided_at
    if decision.decision != DecisionStatus.APPROVED:
        _close_on_decision(run, decision, "proposal")
        return {"status": run.status}
    try:
        approved = mint_approved(run)
    except NotApproved as exc:
        _finish(run, RunStatus.FAILED, str(exc))
        return {"status": run.status}
    run.step = RunStep.ACT
    try:
        result = agent.act(run, approved)
    except ActConflict as exc:
        _finish(run, RunStatus.CONFLICT, str(exc))
    except (ActFailed, InvalidAgentInput) as exc:
        _finish(run, RunStatus.FAILED, str(exc))
    else:
        run.changes = result.changes
        _finish(run, RunStatus.SUCCEEDED, result.outcome)
    return {"status": run.status}


class AgentRunFlow(Flow):
    """The steps of every agent run; the flow run's id is the ``AgentRun.run_id``."""

    slug = "agent_run"
    steps = (
        Step("ask", ask),
        Step("think", think, depends_on=["ask"]),
        Step("propose", propose, depends_on=["think"]),
        Step("act", act, depends_on=["propose"]),
    )

    @classmethod
    def on_run_stopped(cls, run) -> None:
        """End the agent run when its flow run fails (a step kept raising, a wait timed out) or is cancelled."""
        agent_run = AgentRun.objects.select_for_update().filter(run_id=run.pk).first()
        if agent_run is None or agent_run.is_finished:
            return
        status = RunStatus.CANCELLED if run.status == FlowRunStatus.CANCELLED else RunStatus.FAILED
        _finish(agent_run, status, f"The run's flow was {run.status}: {run.error}")
        if agent_run.approval_request_ids:
            # The request it waited for, if undecided, would otherwise stay open for an approver
            # whose decision could no longer change anything.
            withdraw_request(agent_run.approval_request_ids[-1], agent_run.outcome)


# --- helpers -----------------------------------------------------------------------------------


def _open(context: StepContext) -> tuple[AgentRun | None, Agent | None]:
    """Lock the run of this step; return ``(None, None)`` when it has already finished."""
    run = AgentRun.objects.select_for_update().filter(run_id=context.run_id).first()
    if run is None:
        logger.warning("agents.unknown_run", extra={"run_id": context.run_id, "step": context.step})
        return None, None
    if run.is_finished:
        return None, None
    return run, get_agent(run.agent)


def _close_on_decision(run: AgentRun, decision, what: str) -> None:
    status = CLOSING_STATUSES.get(decision.decision, RunStatus.FAILED)
    outcome = "expired" if decision.decision == DecisionStatus.EXPIRED else f"was {decision.decision}"
    who = f" by {decision.decided_by}" if decision.decided_by else ""
    reason = f": {decision.reason}" if decision.reason else ""
    _finish(run, status, f"The {what} {outcome}{who}{reason}")


def _finish(run: AgentRun, status: str, outcome: str) -> None:
    run.status = status
    run.step = RunStep.DONE
    run.outcome = outcome
    run.finished_at = timezone.now()
    run.save()
    completion.notify_finished(run)
    level = logging.INFO if status in (RunStatus.SUCCEEDED, RunStatus.NOTHING_TO_DO) else logging.WARNING
    logger.log(level, "agents.run_finished", extra={"run_id": str(run.run_id), "agent_id": run.agent, "status": status})


def _decision(request_id: str):
    from singularity.hitl.models import HitlDecision

    return HitlDecision.objects.get(request_id=request_id)


def _expires_in():
    from datetime import timedelta

    seconds = settings.AGENTS_APPROVAL_EXPIRES_SECONDS
    return timedelta(seconds=seconds) if seconds > 0 else None


def _decision_timeout() -> float | None:
    """Seconds a step waits for a decision: until shortly after the request expires, else without limit."""
    seconds = settings.AGENTS_APPROVAL_EXPIRES_SECONDS or settings.OBSERVER_DEFAULT_LIFETIME_SECONDS
    return seconds + EXPIRY_GRACE_SECONDS if seconds > 0 else None
