"""The agents' human-in-the-loop API: ask a person before an irreversible action, or ask a question.

Every request is a ``HitlRequest`` row and a message on ``observer_hitl_requests``, written in one
transaction. Observer replies on the shared ``observer_decisions`` queue. The decisions consumer
stores the reply as a ``HitlDecision``, and a trigger on that table sends the notification that
wakes the waiting caller. A caller in another process finds the same decision by request_id.
"""
import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from django.db import transaction

from singularity.messaging.contracts import InvalidMessage
from singularity.messaging.notifications import get_hub
from singularity.messaging.queues import OBSERVER_DECISIONS, OBSERVER_HITL_REQUESTS, OBSERVER_HITL_WITHDRAWALS

from .channels import DECISION_STORED_CHANNEL
from .contracts import HITL_REQUEST, HITL_WITHDRAWAL, MAX_SUMMARY_LENGTH, QUESTION_TASK_TYPE, DecisionStatus, RequestType

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 300.0
# Waiting is driven by notifications; this recheck only covers one lost while the listener reconnected.
SAFETY_RECHECK_SECONDS = 5.0


class HitlError(Exception):
    """Base class of the human-in-the-loop client's errors."""


class InvalidHitlRequest(HitlError, ValueError):
    """A request was built from arguments the request contract rejects."""


class UnknownHitlRequest(HitlError, LookupError):
    """No request with this request_id was ever sent from this database."""


class DecisionTimeout(HitlError, TimeoutError):
    """No decision arrived within the timeout. The request stays open and ``handle`` can wait again."""

    def __init__(self, request_id: str, timeout: float):
        super().__init__(
            f"No decision for HITL request {request_id} within {timeout:g} s. The request stays open on "
            "the approvers' page; wait again with HitlHandle(request_id).wait(), and check that a worker "
            "is running (manage.py run_workers)."
        )
        self.request_id = request_id
        self.timeout = timeout

    @property
    def handle(self) -> "HitlHandle":
        return HitlHandle(self.request_id)


@dataclass(frozen=True)
class Decision:
    """The outcome of a request: a person's decision, or ``expired`` when none came in time."""

    request_id: str
    status: str  # A DecisionStatus value.
    decided_by: str  # The approver's username; empty for an expired request.
    reason: str
    answer: str  # The answer to a question; empty otherwise.
    decided_at: datetime

    @property
    def approved(self) -> bool:
        return self.status == DecisionStatus.APPROVED

    @classmethod
    def from_row(cls, row) -> "Decision":
        return cls(
            request_id=str(row.request_id),
            status=row.decision,
            decided_by=row.decided_by,
            reason=row.reason,
            answer=row.answer,
            decided_at=row.decided_at,
        )


@dataclass(frozen=True)
class HitlHandle:
    """A sent request that can be polled or waited for, in this process or any other."""

    request_id: str

    def poll(self) -> Decision | None:
        """Return the decision if it has arrived, else None; raise ``UnknownHitlRequest`` for a wrong id."""
        return _find_decision(self.request_id)

    def wait(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Decision:
        """Block until the decision arrives; raise ``DecisionTimeout`` after ``timeout`` seconds."""
        return await_decision(self.request_id, timeout=timeout)

    async def wait_async(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Decision:
        """Wait like ``wait`` in a worker thread, so an event loop keeps running meanwhile."""
        return await asyncio.to_thread(await_decision, self.request_id, timeout=timeout)


def submit_approval(
    *,
    agent_id: str,
    task_type: str,
    payload: dict,
    summary: str = "",
    metadata: dict | None = None,
    expires_in: float | timedelta | None = None,
) -> HitlHandle:
    """Send a request for approval and return at once with its handle.

    ``payload`` is what the approver reviews; a ``diff`` key holding a unified diff is shown as a
    diff. ``expires_in`` (seconds or a timedelta) bounds how long approvers may take; without it
    observer applies its default lifetime for the agent and task type.
    """
    body = _request_body(
        RequestType.APPROVAL, agent_id, task_type, payload, summary, metadata, expires_in
    )
    return _send(body)


def submit_question(
    *,
    agent_id: str,
    question: str,
    context: Any = None,
    task_type: str = QUESTION_TASK_TYPE,
    metadata: dict | None = None,
    expires_in: float | timedelta | None = None,
) -> HitlHandle:
    """Send a question for a person to answer and return at once with its handle."""
    if not isinstance(question, str) or not question.strip():
        raise InvalidHitlRequest(f"question={question!r} is invalid: give the question as a non-empty string.")
    payload = {"question": question, "context": context}
    body = _request_body(
        RequestType.QUESTION, agent_id, task_type, payload, question[:1000], metadata, expires_in
    )
    return _send(body)


def request_approval(
    *,
    agent_id: str,
    task_type: str,
    payload: dict,
    summary: str = "",
    metadata: dict | None = None,
    expires_in: float | timedelta | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> Decision:
    """Send a request for approval and block until it is decided; see ``submit_approval``.

    Returns the ``Decision`` (check ``decision.approved`` before acting). Raises ``DecisionTimeout``
    when no decision arrived within ``timeout`` seconds; the request then stays open.
    """
    handle = submit_approval(
        agent_id=agent_id,
        task_type=task_type,
        payload=payload,
        summary=summary,
        metadata=metadata,
        expires_in=expires_in,
    )
    return handle.wait(timeout)


def ask_question(
    *,
    agent_id: str,
    question: str,
    context: Any = None,
    task_type: str = QUESTION_TASK_TYPE,
    metadata: dict | None = None,
    expires_in: float | timedelta | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> Decision:
    """Send a question and block until it is answered (``decision.answer``) or closed otherwise.

    Raises ``DecisionTimeout`` when nothing arrived within ``timeout`` seconds.
    """
    handle = submit_question(
        agent_id=agent_id,
        question=question,
        context=context,
        task_type=task_type,
        metadata=metadata,
        expires_in=expires_in,
    )
    return handle.wait(timeout)


def await_decision(request_id: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Decision:
    """Wait for the decision on ``request_id`` and return it, waking on the stored-decision notification.

    Raises ``DecisionTimeout`` after ``timeout`` seconds and ``UnknownHitlRequest`` for an id that
    was never sent.
    """
    request_id = str(request_id)
    deadline = time.monotonic() + timeout
    # The watch is open before the first look, so a decision stored in between still wakes it.
    with get_hub().watch(DECISION_STORED_CHANNEL, request_id) as watch:
        while True:
            decision = _find_decision(request_id)
            if decision is not None:
                return decision
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DecisionTimeout(request_id, timeout)
            watch.wait(min(remaining, SAFETY_RECHECK_SECONDS))


def withdraw_request(request_id: str, reason: str) -> int | None:
    """Ask observer to cancel a request this side no longer needs; return the message id.

    Returns None, sending nothing, when the request already has a decision. Observer cancels the
    approval only if it is still pending and then replies ``cancelled`` like any decision, so an
    approver who decides first wins. Inside ``transaction.atomic()`` the message commits with the
    caller's writes.
    """
    from singularity.models import Queue

    if _find_decision(request_id) is not None:
        return None
    body = {
        "request_id": str(request_id),
        "reason": (reason.strip() or "withdrawn by the agent")[:MAX_SUMMARY_LENGTH],
        "withdrawn_at": datetime.now(timezone.utc).isoformat(),
    }
    HITL_WITHDRAWAL.validate(body)
    msg_id = Queue.objects.send(OBSERVER_HITL_WITHDRAWALS, body)
    logger.info("hitl.request_withdrawn", extra={"request_id": body["request_id"], "queue": OBSERVER_HITL_WITHDRAWALS, "msg_id": msg_id})
    return msg_id


def _find_decision(request_id: str) -> Decision | None:
    from .models import HitlRequest

    try:
        uuid.UUID(str(request_id))
    except ValueError:
        raise UnknownHitlRequest(f"request_id={request_id!r} is not a UUID; use the id the handle carries.") from None
    request = HitlRequest.objects.select_related("decision").filter(request_id=request_id).first()
    if request is None:
        raise UnknownHitlRequest(
            f"No HITL request has request_id {request_id}; use the id submit_approval or submit_question returned."
        )
    row = getattr(request, "decision", None)
    return Decision.from_row(row) if row is not None else None


def _request_body(
    request_type: str,
    agent_id: str,
    task_type: str,
    payload: Any,
    summary: str,
    metadata: dict | None,
    expires_in: float | timedelta | None,
) -> dict:
    now = datetime.now(timezone.utc)
    body = {
        "request_id": str(uuid.uuid4()),
        "type": str(request_type),
        "agent_id": agent_id,
        "task_type": task_type,
        "payload": payload,
        "summary": summary,
        "metadata": metadata or {},
        "expires_at": _expiry(expires_in, now),
        "reply_to": OBSERVER_DECISIONS,
        "created_at": now.isoformat(),
    }
    try:
        HITL_REQUEST.validate(body)
    except InvalidMessage as exc:
        raise InvalidHitlRequest(f"Invalid HITL request: {exc}.") from exc
    return body


def _expiry(expires_in: float | timedelta | None, now: datetime) -> str | None:
    if expires_in is None:
        return None
    seconds = expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise InvalidHitlRequest(
            f"expires_in={expires_in!r} is invalid: give a positive number of seconds or a timedelta, "
            "or None for observer's default lifetime."
        )
    return (now + timedelta(seconds=seconds)).isoformat()


def _send(body: dict) -> HitlHandle:
    from singularity.models import Queue

    from .models import HitlRequest

    with transaction.atomic():
        HitlRequest.objects.create(
            request_id=body["request_id"],
            type=body["type"],
            agent_id=body["agent_id"],
            task_type=body["task_type"],
            reply_to=body["reply_to"],
            expires_at=datetime.fromisoformat(body["expires_at"]) if body["expires_at"] else None,
        )
        msg_id = Queue.objects.send(OBSERVER_HITL_REQUESTS, body)
    logger.info(
        "hitl.request_sent",
        extra={
            "request_id": body["request_id"],
            "agent_id": body["agent_id"],
            "type": body["type"],
            "queue": OBSERVER_HITL_REQUESTS,
            "msg_id": msg_id,
        },
    )
    return HitlHandle(body["request_id"])
