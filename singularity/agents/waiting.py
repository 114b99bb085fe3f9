"""The durable wait of an agent run, kept in one module so it can become a flow's wait-for-event step.

A waiting run keeps no thread and no connection busy: ``wait_for_llm`` and ``wait_for_decision`` only
record on the ``AgentRun`` row which request_id it waits for. Two triggers, created by migration
``singularity_agents.0001_initial`` from the SQL below, react when that id's ``JobResult`` or
``HitlDecision`` is inserted: in the same transaction they send ``{run_id, event, ref}`` to the
``agent_runs`` queue, whose consumer resumes the run. The decision and the wake-up message
therefore commit together, so a worker restart, or no worker at all, loses nothing: the message
waits in the queue until a worker reads it.

``requeue_ready_runs`` repairs the one case the triggers cannot cover: a queue purged by hand.
"""
import logging

from django.db import connection

from singularity.messaging.queues import AGENT_RUNS

from .models import AgentRun, RunStatus, WaitKind

logger = logging.getLogger(__name__)

# Notified with the run_id when a run reaches a final status, at commit; ``agents run --wait`` listens.
RUN_FINISHED_CHANNEL = "singularity_agent_runs"


class Event:
    """The ``event`` field of an ``agent_runs`` message."""

    START = "start"
    LLM_RESULT = "llm_result"
    DECISION = "decision"


# The trigger functions run in the transaction that stores the result or decision. pgmq.send with
# an integer delay picks one overload unambiguously; the insert trigger pgmq puts on the queue
# table then sends the NOTIFY that wakes an idle agent_runs consumer.
WAKE_TRIGGERS_CREATE = f"""
CREATE FUNCTION singularity_agents_wake_on_result() RETURNS trigger AS $$
BEGIN
    PERFORM pgmq.send('{AGENT_RUNS}', jsonb_build_object(
        'run_id', r.run_id::text, 'event', '{Event.LLM_RESULT}', 'ref', NEW.request_id::text), 0)
    FROM singularity_agents_agentrun r
    WHERE r.wait_kind = '{WaitKind.LLM}' AND r.waiting_for = NEW.request_id;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER singularity_agents_wake_on_result
AFTER INSERT ON singularity_jobresult
FOR EACH ROW EXECUTE FUNCTION singularity_agents_wake_on_result();

CREATE FUNCTION singularity_agents_wake_on_decision() RETURNS trigger AS $$
BEGIN
    PERFORM pgmq.send('{AGENT_RUNS}', jsonb_build_object(
        'run_id', r.run_id::text, 'event', '{Event.DECISION}', 'ref', NEW.request_id::text), 0)
    FROM singularity_agents_agentrun r
    WHERE r.wait_kind = '{WaitKind.DECISION}' AND r.waiting_for = NEW.request_id;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER singularity_agents_wake_on_decision
AFTER INSERT ON singularity_hitl_hitldecision
FOR EACH ROW EXECUTE FUNCTION singularity_agents_wake_on_decision();
"""

WAKE_TRIGGERS_DROP = """
DROP TRIGGER IF EXISTS singularity_agents_wake_on_result ON singularity_jobresult;
DROP FUNCTION IF EXISTS singularity_agents_wake_on_result();
DROP TRIGGER IF EXISTS singularity_agents_wake_on_decision ON singularity_hitl_hitldecision;
DROP FUNCTION IF EXISTS singularity_agents_wake_on_decision();
"""


def wait_for_llm(run: AgentRun, request_id: str) -> None:
    """Park ``run`` until the ``JobResult`` of ``request_id`` is stored; the caller saves the row."""
    _park(run, WaitKind.LLM, RunStatus.WAITING_LLM, request_id)


def wait_for_decision(run: AgentRun, request_id: str) -> None:
    """Park ``run`` until the ``HitlDecision`` of ``request_id`` is stored; the caller saves the row."""
    _park(run, WaitKind.DECISION, RunStatus.WAITING_DECISION, request_id)


def clear_wait(run: AgentRun) -> None:
    run.wait_kind = WaitKind.NONE
    run.waiting_for = None


def is_awaited(run: AgentRun, event: str, ref: str) -> bool:
    """Return whether a message for ``event`` on ``ref`` is the one ``run`` waits for now."""
    expected_kind = {Event.LLM_RESULT: WaitKind.LLM, Event.DECISION: WaitKind.DECISION}.get(event)
    return expected_kind is not None and run.wait_kind == expected_kind and str(run.waiting_for) == ref


def enqueue(run_id: str, event: str, ref: str = "") -> int:
    """Send one ``agent_runs`` message; inside ``transaction.atomic()`` it commits with the caller's writes."""
    from singularity.models import Queue

    return Queue.objects.send(AGENT_RUNS, {"run_id": str(run_id), "event": event, "ref": str(ref)})


def notify_finished(run: AgentRun) -> None:
    """Announce the run's final status; PostgreSQL delivers the notification at commit."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [RUN_FINISHED_CHANNEL, str(run.run_id)])


def requeue_ready_runs() -> int:
    """Queue a resume message for each waiting run whose result or decision is already stored.

    Returns how many were queued. A duplicate of a message still in the queue is harmless: the
    consumer ignores a message for a wait the run has left.
    """
    from singularity.hitl.models import HitlDecision
    from singularity.models import JobResult

    queued = 0
    waiting = AgentRun.objects.exclude(wait_kind=WaitKind.NONE).filter(waiting_for__isnull=False)
    for run in waiting:
        if run.wait_kind == WaitKind.LLM:
            ready = JobResult.objects.filter(request_id=run.waiting_for).exists()
            event = Event.LLM_RESULT
        else:
            ready = HitlDecision.objects.filter(request_id=run.waiting_for).exists()
            event = Event.DECISION
        if ready:
            enqueue(run.run_id, event, str(run.waiting_for))
            queued += 1
            logger.info("agents.run_requeued", extra={"run_id": str(run.run_id), "event": event})
    return queued


def _park(run: AgentRun, kind: str, status: str, request_id: str) -> None:
    run.wait_kind = kind
    run.waiting_for = request_id
    run.status = status


def wait_until_finished(run_id: str, timeout: float) -> AgentRun | None:
    """Block until the run reaches a final status and return it, or return None after ``timeout`` seconds.

    Wakes on the run-finished notification; the recheck every few seconds covers one lost while the
    listening connection reconnected.
    """
    import time

    from singularity.messaging.notifications import get_hub

    deadline = time.monotonic() + timeout
    with get_hub().watch(RUN_FINISHED_CHANNEL, str(run_id)) as watch:
        while True:
            run = AgentRun.objects.get(run_id=run_id)
            if run.is_finished:
                return run
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            watch.wait(min(remaining, 5.0))
