"""Decide approvals: approve, reject, answer, cancel or expire a pending one, and reply to the agent.

Each decision is one transaction with three writes: a conditional update that moves the approval
out of ``pending`` (the row count says whether this call won), an ``ApprovalHistory`` row, and the
reply on the approval's ``reply_to`` queue. If the reply cannot be sent, nothing is written. A
second decision on the same approval (two approvers, a double click, a stale page) finds it no
longer pending and raises ``AlreadyDecided``, which changes nothing.
"""
import logging
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from singularity.hitl.contracts import DecisionStatus

from .models import DECIDE_PERMISSION, Approval, ApprovalHistory, ApprovalStatus

logger = logging.getLogger(__name__)


class DecisionError(Exception):
    """A decision that was not made; the message explains why, in words an approver can act on."""


class ApprovalNotFound(DecisionError, LookupError):
    """No approval has the given id."""


class AlreadyDecided(DecisionError):
    """The approval was no longer pending: someone decided it first, or it expired."""

    def __init__(self, approval: Approval):
        self.approval = approval
        by = f" by {approval.decided_by.get_username()}" if approval.decided_by_id else ""
        when = f" at {approval.decided_at:%Y-%m-%d %H:%M:%S} UTC" if approval.decided_at else ""
        super().__init__(f"Request {approval.request_id} was already {approval.status}{by}{when}; nothing changed.")


class InvalidDecision(DecisionError, ValueError):
    """The decision does not fit the approval, such as approving a question or an answer left empty."""


@dataclass(frozen=True)
class Action:
    """One way to close a pending approval: the status it sets and the request types it applies to."""

    status: str
    verb: str
    types: tuple[str, ...]


APPROVE = Action(ApprovalStatus.APPROVED, "approve", (Approval.Type.APPROVAL,))
REJECT = Action(ApprovalStatus.REJECTED, "reject", (Approval.Type.APPROVAL, Approval.Type.QUESTION))
ANSWER = Action(ApprovalStatus.ANSWERED, "answer", (Approval.Type.QUESTION,))
CANCEL = Action(ApprovalStatus.CANCELLED, "cancel", (Approval.Type.APPROVAL, Approval.Type.QUESTION))
ACTIONS = {action.verb: action for action in (APPROVE, REJECT, ANSWER, CANCEL)}


def approve(approval_id: int, user, reason: str = "") -> Approval:
    return decide(approval_id, APPROVE, user, reason=reason)


def reject(approval_id: int, user, reason: str = "") -> Approval:
    return decide(approval_id, REJECT, user, reason=reason)


def answer(approval_id: int, user, answer_text: str, reason: str = "") -> Approval:
    return decide(approval_id, ANSWER, user, reason=reason, answer=answer_text)


def cancel(approval_id: int, user, reason: str = "") -> Approval:
    return decide(approval_id, CANCEL, user, reason=reason)


def decide(approval_id: int, action: Action, user, *, reason: str = "", answer: str = "") -> Approval:
    """Close a pending approval with ``action`` as ``user`` and reply to the agent; return the approval.

    Raises ``PermissionDenied`` when ``user`` lacks ``observer.decide_approval``, ``ApprovalNotFound``,
    ``InvalidDecision`` when the action does not fit the approval's type or the answer is empty, and
    ``AlreadyDecided`` when it is no longer pending. An approval past its ``expires_at`` is closed
    as expired instead, and ``AlreadyDecided`` says so.
    """
    if user is None or not user.is_authenticated or not user.has_perm(DECIDE_PERMISSION):
        raise PermissionDenied(
            f"User {getattr(user, 'username', None)!r} may not decide approvals: an administrator must add "
            "them to the Approvers group (manage.py createapprover USER)."
        )
    approval = Approval.objects.select_related("decided_by").filter(pk=approval_id).first()
    if approval is None:
        raise ApprovalNotFound(f"No approval has id {approval_id}; it may have been removed. Reload the list.")
    _check_action(approval, action, answer)

    now = timezone.now()
    decided = _close(
        approval.pk,
        action.status,
        actor=user,
        reason=reason.strip(),
        answer=answer.strip(),
        now=now,
        # A deadline that passed before this decision wins, because the agent is sent ``expired`` for it.
        only_before_expiry=True,
    )
    if decided is not None:
        return decided

    current = Approval.objects.select_related("decided_by").get(pk=approval.pk)
    if current.is_pending and current.is_past_expiry(now):
        current = expire(current.pk, now=now) or Approval.objects.select_related("decided_by").get(pk=approval.pk)
    logger.info(
        "observer.decision_rejected_already_decided",
        extra={"request_id": str(current.request_id), "status": current.status, "user": user.get_username()},
    )
    raise AlreadyDecided(current)


def expire(approval_id: int, *, now=None) -> Approval | None:
    """Close a pending approval whose ``expires_at`` has passed as ``expired``; None if it was not due."""
    now = now or timezone.now()
    return _close(
        approval_id,
        ApprovalStatus.EXPIRED,
        actor=None,
        reason="No decision before the deadline.",
        answer="",
        now=now,
        only_due=True,
    )


def withdraw(approval_id: int, reason: str, *, now=None) -> Approval | None:
    """Cancel a pending approval its agent withdrew, and reply ``cancelled``; None if it was no longer pending."""
    return _close(
        approval_id,
        ApprovalStatus.CANCELLED,
        actor=None,
        reason=f"Withdrawn by the agent: {reason}",
        answer="",
        now=now or timezone.now(),
    )


def expire_due(*, now=None, limit: int = 500) -> int:
    """Expire up to ``limit`` pending approvals past their deadline; return how many were closed.

    Each one commits on its own, so an approval whose reply cannot be sent (its reply queue was
    dropped, say) stays pending and is logged without holding back the others.
    """
    now = now or timezone.now()
    due_ids = list(
        Approval.objects.filter(status=ApprovalStatus.PENDING, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("pk", flat=True)[:limit]
    )
    expired = 0
    for approval_id in due_ids:
        try:
            if expire(approval_id, now=now) is not None:
                expired += 1
        except Exception:
            logger.exception("observer.expiry_failed", extra={"approval_id": approval_id})
    return expired


def decision_body(approval: Approval) -> dict:
    """Build the decisions-queue message for a closed approval."""
    return {
        "request_id": str(approval.request_id),
        "decision": str(approval.status),
        "type": str(approval.type),
        "agent_id": approval.agent_id,
        "decided_by": approval.decided_by.get_username() if approval.decided_by_id else None,
        "reason": approval.decision_reason,
        "answer": approval.answer,
        "decided_at": approval.decided_at.isoformat(),
    }


def _check_action(approval: Approval, action: Action, answer: str) -> None:
    if approval.type not in action.types:
        hint = "answer it or reject it" if approval.is_question else "approve it or reject it"
        raise InvalidDecision(
            f"Request {approval.request_id} is {'a question' if approval.is_question else 'an approval'} "
            f"and cannot be {action.status}: {hint}."
        )
    if action is ANSWER and not answer.strip():
        raise InvalidDecision(f"Question {approval.request_id} needs an answer: type one before submitting.")


def _close(
    approval_id: int,
    status: str,
    *,
    actor,
    reason: str,
    answer: str,
    now,
    only_before_expiry: bool = False,
    only_due: bool = False,
) -> Approval | None:
    """Move a pending approval to ``status``, record it and reply, all in one transaction.

    Returns the updated approval, or None when the conditional update matched no row.
    """
    pending = Q(pk=approval_id, status=ApprovalStatus.PENDING)
    if only_before_expiry:
        pending &= Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    if only_due:
        pending &= Q(expires_at__lte=now)

    from singularity.models import Queue

    with transaction.atomic():
        updated = Approval.objects.filter(pending).update(
            status=status,
            decided_by=actor,
            decided_at=now,
            decision_reason=reason,
            answer=answer,
            updated_at=now,
        )
        if not updated:
            return None
        approval = Approval.objects.select_related("decided_by").get(pk=approval_id)
        ApprovalHistory.objects.create(
            approval=approval,
            from_status=ApprovalStatus.PENDING,
            to_status=status,
            actor=actor,
            reason=reason,
            created_at=now,
        )
        # Raises inside the transaction when the reply queue is missing, which rolls back the decision.
        msg_id = Queue.objects.send(approval.reply_to, decision_body(approval))

    logger.info(
        "observer.approval_decided",
        extra={
            "request_id": str(approval.request_id),
            "agent_id": approval.agent_id,
            "status": status,
            "user": actor.get_username() if actor else None,
            "queue": approval.reply_to,
            "msg_id": msg_id,
        },
    )
    return approval


# The decisions queue carries exactly the closing statuses; a test pins that they stay in step.
CLOSING_STATUSES = tuple(DecisionStatus.values)
