"""The flow that ``manage.py bench_flow`` runs: four steps in a row that do no work.

Only the benchmark imports this module (its worker process loads it through
``QUANTUM_FLOW_MODULES``), so the flow and its consumer exist nowhere else. The last step sends a
notification with the run id, which lets the benchmark wait for a run without polling.
"""
from django.db import connection

from .definitions import Flow, Step, StepContext

DONE_CHANNEL = "quantum_flow_bench_done"


def do_nothing(context: StepContext) -> None:
    return None


def announce_done(context: StepContext) -> None:
    # pg_notify is delivered at commit, so the waiter wakes only once the run has completed.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [DONE_CHANNEL, context.run_id])
    return None


class NoOpFlow(Flow):
    slug = "bench_noop"
    steps = (
        Step("one", do_nothing),
        Step("two", do_nothing, depends_on=["one"]),
        Step("three", do_nothing, depends_on=["two"]),
        Step("four", announce_done, depends_on=["three"]),
    )
