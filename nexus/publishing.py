"""Send result messages to ``ai_results``."""
from datetime import datetime, timezone

from singularity.messaging.queues import AI_RESULTS
from singularity.quantum_flow.eager import send_with_completion


def publish_result(body: dict) -> None:
    """Send ``body`` to ``ai_results`` with a ``completed_at`` time, as part of the step's completion.

    An eager run sends it with its final statement, so the message id is not known here.
    """
    body.setdefault("completed_at", datetime.now(timezone.utc).isoformat())
    send_with_completion(AI_RESULTS, body)
