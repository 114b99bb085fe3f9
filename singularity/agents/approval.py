"""The ``Approved`` token: the only way into an agent's ``act`` step.

The runner mints one from the stored ``HitlDecision`` of the run's proposal, and only when that
decision is ``approved`` and belongs to an approval request (not a question) whose request_id is
the run's ``proposal_request_id``. Calling ``Approved(...)`` directly raises, so an agent cannot
make its own.
"""
from dataclasses import dataclass
from datetime import datetime

from singularity.hitl.contracts import DecisionStatus, RequestType


class NotApproved(Exception):
    """The run's proposal has no approved decision; nothing may be applied."""


@dataclass(frozen=True)
class _Grant:
    request_id: str
    run_id: str
    decided_by: str
    decided_at: datetime


class Approved:
    """Proof that a person approved exactly the proposal of one run."""

    __slots__ = ("_grant",)

    def __init__(self, *args, **kwargs):
        raise TypeError("Approved tokens are minted by the agent runner from a stored approved decision.")

    @property
    def request_id(self) -> str:
        return self._grant.request_id

    @property
    def run_id(self) -> str:
        return self._grant.run_id

    @property
    def decided_by(self) -> str:
        return self._grant.decided_by

    def covers(self, run) -> bool:
        """Return whether this token approves the current proposal of ``run``."""
        return (
            run.proposal_request_id is not None
            and self._grant.request_id == str(run.proposal_request_id)
            and self._grant.run_id == str(run.run_id)
        )


def mint_approved(run) -> Approved:
    """Return an ``Approved`` token for ``run``'s proposal; raise ``NotApproved`` when there is none."""
    from singularity.hitl.models import HitlDecision

    if run.proposal_request_id is None:
        raise NotApproved(f"Run {run.run_id} has no proposal to approve.")
    request_id = str(run.proposal_request_id)
    if request_id not in run.approval_request_ids:
        raise NotApproved(f"Approval {request_id} was not sent by run {run.run_id}.")
    decision = (
        HitlDecision.objects.select_related("request")
        .filter(request_id=request_id, request__type=RequestType.APPROVAL)
        .first()
    )
    if decision is None or decision.decision != DecisionStatus.APPROVED:
        status = decision.decision if decision is not None else "pending"
        raise NotApproved(f"Approval {request_id} of run {run.run_id} is {status}, not approved.")
    token = object.__new__(Approved)
    object.__setattr__(token, "_grant", _Grant(request_id, str(run.run_id), decision.decided_by, decision.decided_at))
    return token
