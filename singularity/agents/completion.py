"""The end of an agent run: announced with a notification at commit, awaited by ``agents run --wait``."""
import time

from django.db import connection

from .models import AgentRun

# Notified with the run_id when a run reaches a final status, at commit.
RUN_FINISHED_CHANNEL = "singularity_agent_runs"


def notify_finished(run: AgentRun) -> None:
    """Announce the run's final status; PostgreSQL delivers the notification at commit."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [RUN_FINISHED_CHANNEL, str(run.run_id)])


def wait_until_finished(run_id: str, timeout: float) -> AgentRun | None:
    """Block until the run reaches a final status and return it, or return None after ``timeout`` seconds.

    Wakes on the run-finished notification; the recheck every few seconds covers one lost while the
    listening connection reconnected.
    """
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
