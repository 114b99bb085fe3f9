"""Flows used only by the quantum_flow tests.

Test modules import this module, and worker processes load it through
``QUANTUM_FLOW_MODULES=tests.quantum_flow_flows``. Every handler sends one message to
``EFFECTS_QUEUE`` inside its step's transaction, so the queue contains exactly the effects of the
attempts that completed: a step completed twice would leave two messages.
"""
import threading
import time

from singularity.messaging.runtime import RetryLater
from singularity.quantum_flow import Flow, Step, StepContext, StepFailed, Wait

EFFECTS_QUEUE = "test_flow_effects"
FLOW_MODULE = __name__


def record_effect(context: StepContext, **extra) -> None:
    from singularity.models import Queue

    Queue.objects.send(EFFECTS_QUEUE, {"run_id": context.run_id, "step": context.step, "attempt": context.attempt, **extra})


def emit(context: StepContext) -> dict:
    record_effect(context)
    return {"step": context.step, "input": context.input, "saw": sorted(context.outputs)}


def join(context: StepContext) -> dict:
    record_effect(context)
    return {"step": context.step, "outputs": context.outputs}


class DiamondFlow(Flow):
    slug = "test_diamond"
    steps = (
        Step("a", emit),
        Step("b", emit, depends_on=["a"]),
        Step("c", emit, depends_on=["a"]),
        Step("d", join, depends_on=["b", "c"]),
    )


def flaky(context: StepContext) -> dict:
    """Fail until attempt ``input["succeed_on"]``, requesting ``input["retry_after"]`` seconds of delay when given."""
    if context.attempt < context.input["succeed_on"]:
        if context.input.get("retry_after") is not None:
            raise RetryLater("provider requested a delay", delay=context.input["retry_after"])
        raise ConnectionError(f"flaky failure on attempt {context.attempt}")
    record_effect(context)
    return {"attempt": context.attempt}


class RetryFlow(Flow):
    slug = "test_retry"
    steps = (Step("flaky", flaky, max_attempts=4, base_delay=0.2), Step("after", emit, depends_on=["flaky"]))


def always_fails(context: StepContext) -> None:
    raise ValueError(f"broken on attempt {context.attempt}")


def refuses(context: StepContext) -> None:
    raise StepFailed("input can never work")


class FailingFlow(Flow):
    """``a`` then ``broken`` (which never succeeds) and ``sibling``; ``last`` needs both."""

    slug = "test_failing"
    steps = (
        Step("a", emit),
        Step("broken", always_fails, depends_on=["a"], max_attempts=2, base_delay=0),
        Step("sibling", emit, depends_on=["a"]),
        Step("last", join, depends_on=["broken", "sibling"]),
    )


class RefusingFlow(Flow):
    slug = "test_refusing"
    steps = (Step("refuse", refuses, max_attempts=5),)


def sleeps(context: StepContext) -> dict:
    """Sleep ``input["sleep"]`` seconds on the attempts listed in ``input["slow_attempts"]``."""
    if context.attempt in context.input.get("slow_attempts", [1]):
        time.sleep(context.input["sleep"])
    record_effect(context)
    return {"slept_on_attempt": context.attempt}


class TimeoutFlow(Flow):
    slug = "test_timeout"
    steps = (Step("slow", sleeps, timeout=0.2, max_attempts=2, base_delay=0),)


class CrashFlow(Flow):
    """A step in the middle that is slow on its first attempt, so a test can kill the worker in it."""

    slug = "test_crash"
    steps = (
        Step("first", emit),
        Step("slow", sleeps, depends_on=["first"], base_delay=0.05),
        Step("last", join, depends_on=["slow"]),
    )



# In-process tests open these gates to let a blocked step go on; worker processes never use them.
GATES: dict[str, threading.Event] = {}
REPAIRED_RUNS: set[str] = set()


def waits_for_gate(context: StepContext) -> dict:
    GATES[context.run_id].wait(10)
    record_effect(context)
    return {"waited": True}


class GatedFlow(Flow):
    slug = "test_gated"
    steps = (Step("wait", waits_for_gate), Step("after", emit, depends_on=["wait"]))


def broken_until_repaired(context: StepContext) -> dict:
    if context.run_id not in REPAIRED_RUNS:
        raise ValueError("not repaired yet")
    record_effect(context)
    return {"repaired": True}


class RepairableFlow(Flow):
    slug = "test_repairable"
    steps = (
        Step("a", emit),
        Step("fragile", broken_until_repaired, depends_on=["a"], max_attempts=2, base_delay=0),
        Step("last", join, depends_on=["fragile"]),
    )


TEST_EVENT = "test.reply"


def asks_and_waits(context: StepContext) -> Wait:
    """Wait for ``test.reply`` with the run's ``input["key"]``, up to ``input["timeout"]`` seconds."""
    record_effect(context)
    return Wait(TEST_EVENT, context.input["key"], timeout=context.input.get("timeout"))


class WaitingFlow(Flow):
    """``ask`` waits for an event and ``after`` receives its payload. A stopped run leaves an effect."""

    slug = "test_waiting"
    steps = (Step("ask", asks_and_waits), Step("after", join, depends_on=["ask"]))

    @classmethod
    def on_run_stopped(cls, run) -> None:
        from singularity.models import Queue

        Queue.objects.send(EFFECTS_QUEUE, {"run_id": str(run.pk), "step": "on_run_stopped", "status": run.status, "error": run.error})


def waits_badly(context: StepContext) -> Wait:
    return Wait("Not An Event", "key")


class BadWaitFlow(Flow):
    slug = "test_bad_wait"
    steps = (Step("ask", waits_badly, max_attempts=5),)


# A temporary table that the in-process tests create. hands_over writes a row per completed attempt.
HAND_OVER_TABLE = "test_hand_over_writes"


def hands_over(context: StepContext) -> dict:
    """Hand a row and an effect to the step's completion. Step ``first`` then fails until ``input["succeed_on"]``."""
    from singularity.quantum_flow.eager import execute_with_completion, send_with_completion

    execute_with_completion(
        f"INSERT INTO {HAND_OVER_TABLE} (run_id, step, attempt) VALUES (%s, %s, %s)",
        [context.run_id, context.step, context.attempt],
    )
    send_with_completion(EFFECTS_QUEUE, {"run_id": context.run_id, "step": context.step, "attempt": context.attempt})
    if context.step == "first" and context.attempt < context.input["succeed_on"]:
        raise ConnectionError(f"failure after the hand-over on attempt {context.attempt}")
    return {"attempt": context.attempt}


class HandOverFlow(Flow):
    slug = "test_hand_over"
    steps = (
        Step("first", hands_over, max_attempts=2, base_delay=0),
        Step("second", hands_over, depends_on=["first"]),
    )
