"""Send result messages to ``ai_results``."""
from datetime import datetime, timezone

from singularity.messaging.queues import AI_RESULTS


def publish_result(body: dict) -> int:
    """Send ``body`` to ``ai_results`` with a ``completed_at`` time; return the message id."""
    from singularity.models import Queue

    body.setdefault("completed_at", datetime.now(timezone.utc).isoformat())
    return Queue.objects.send(AI_RESULTS, body)
