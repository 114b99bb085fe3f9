"""The step worker: one consumer per flow on its ``flow_<slug>`` queue, run by ``manage.py run_workers``.

``PGFLOW_<SLUG>_ENABLED`` (default true) switches a flow's consumer on or off in a process, so the
pipelines of one deployment can run on separate machines.
"""
import os

from django.core.exceptions import ImproperlyConfigured

from singularity.messaging.contracts import Contract, Field
from singularity.messaging.registry import consumer
from singularity.messaging.runtime import DeadLetter, Delivery, Hidden

from .definitions import Flow, on_register
from .events import FLOW_EVENTS_QUEUE, InvalidEvent, deliver_event, event_name_problem, is_event_key
from .executor import StepOutcome, Task, execute_task
from .models import MAX_EVENT_KEY_LENGTH

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
# The engine counts attempts per step and fails the run after the last one, so the runtime's own
# read limit only has to stop a task that kills every worker before it is even claimed.
TASK_MAX_READS = 1000


def step_task_contract(flow: type[Flow]) -> Contract:
    return Contract(
        queue=flow.queue_name(),
        fields=(Field("run_id", (str,)), Field("step", (str,), check=lambda name: _check_step(flow, name))),
    )


def _check_step(flow: type[Flow], name: str) -> str | None:
    if name in flow.step_map:
        return None
    return f"names no step of flow {flow.slug!r}; its steps are {', '.join(flow.step_map)}"


def pipeline_enabled(flow: type[Flow]) -> bool:
    """Read ``PGFLOW_<SLUG>_ENABLED`` from the environment (or ``.env``); unset means enabled."""
    variable = flow.enabled_variable()
    raw = os.environ.get(variable, "").strip().lower()
    if not raw or raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{variable}={os.environ[variable]!r} is invalid: use true or false (1/0, yes/no and on/off work too)."
    )


class StepTaskHandler:
    """The consumer of one flow's queue: turn each message into a ``Task`` and execute it."""

    def __init__(self, flow: type[Flow]):
        self.flow = flow

    def __call__(self, delivery: Delivery) -> Hidden | None:
        from singularity.models import Queue

        body = delivery.body
        result = execute_task(self.flow, Task(delivery.message.msg_id, body["run_id"], body["step"]))
        if result.outcome in (StepOutcome.RETRYING, StepOutcome.WAITING):
            # The task is hidden for a backoff or until a wait's deadline. Telling the runtime when
            # the earliest hidden task returns lets it wake then instead of after its poll interval.
            seconds = Queue.objects.seconds_until_next_visible(self.flow.queue_name())
            if seconds is not None:
                return Hidden(seconds)
        return None

    def disabled_reason(self) -> str | None:
        if pipeline_enabled(self.flow):
            return None
        return f"{self.flow.enabled_variable()} is false"


_handlers: dict[str, StepTaskHandler] = {}


def register_step_consumer(flow: type[Flow]) -> None:
    """Register the consumer ``flow_<slug>`` for ``flow``'s queue.

    A flow registered again (its module reloaded) keeps its handler object, which the consumer
    table accepts as the same registration.
    """
    handler = _handlers.setdefault(flow.slug, StepTaskHandler(flow))
    handler.flow = flow
    consumer(
        flow.queue_name(),
        name=flow.queue_name(),
        contract=step_task_contract(flow),
        max_attempts=TASK_MAX_READS,
        owns_transaction=True,
        disabled_reason=handler.disabled_reason,
    )(handler)


def _check_event_name(value: str) -> str | None:
    problem = event_name_problem(value)
    return f"is invalid: {problem}" if problem else None


def _check_event_key(value: str) -> str | None:
    if is_event_key(value):
        return None
    return f"is invalid: give a non-empty string of at most {MAX_EVENT_KEY_LENGTH} characters"


FLOW_EVENT_MESSAGE = Contract(
    queue=FLOW_EVENTS_QUEUE,
    fields=(
        Field("event", (str,), check=_check_event_name),
        Field("key", (str,), check=_check_event_key),
        Field("payload", (object,), required=False),
    ),
)


def deliver_event_message(delivery: Delivery) -> DeadLetter | None:
    """Deliver one ``flow_events`` message whose event name and key the contract has checked."""
    body = delivery.body
    try:
        deliver_event(body["event"], body["key"], body.get("payload"))
    except InvalidEvent as exc:
        return DeadLetter("invalid_event", str(exc))
    return None


def connect() -> None:
    """Give every flow, registered now or later, its consumer, and register the ``flow_events`` consumer."""
    on_register(register_step_consumer)
    consumer(FLOW_EVENTS_QUEUE, name=FLOW_EVENTS_QUEUE, contract=FLOW_EVENT_MESSAGE)(deliver_event_message)
