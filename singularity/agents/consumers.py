"""The ``agent_runs`` consumer: advance one agent run per message."""
import logging

from django.db import transaction

from singularity.messaging.contracts import Contract, Field
from singularity.messaging.queues import AGENT_RUNS
from singularity.messaging.registry import consumer
from singularity.messaging.runtime import Delivery

from .runner import advance, fail_run

logger = logging.getLogger(__name__)


def _check_uuid(value: str) -> str | None:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return "must be a UUID"
    return None


AGENT_RUN_MESSAGE = Contract(
    AGENT_RUNS,
    (
        Field("run_id", (str,), check=_check_uuid),
        Field("event", (str,)),
        Field("ref", (str,), required=False),
    ),
)


@consumer(AGENT_RUNS, name="agent_runs", contract=AGENT_RUN_MESSAGE)
def advance_run(delivery: Delivery) -> None:
    """Advance the run by one step; on the last failed attempt, end the run as failed with the error.

    A step that raises is rolled back to the savepoint and retried by the runtime with backoff.
    """
    body = delivery.body
    run_id = body["run_id"]
    try:
        with transaction.atomic():
            advance(run_id, body["event"], body.get("ref") or "")
    except Exception as exc:
        if not delivery.is_last_attempt:
            raise
        logger.exception("agents.step_failed", extra={**delivery.log_ids, "run_id": run_id})
        fail_run(run_id, f"The {body['event']} step failed after {delivery.attempt} attempts: {exc}")
    return None
