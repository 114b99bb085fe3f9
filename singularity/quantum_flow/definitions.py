"""Flow definitions: a ``Flow`` subclass names its steps, and the class is checked when it is defined.

A definition that cannot run raises ``FlowDefinitionError`` at import time with the flow and the
step in its message. Examples are a bad slug, a duplicate step, an unknown dependency, a cycle and
a handler that is not callable. A mistake therefore fails the deployment, not the first run.
"""
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from singularity.messaging.queues import MAX_QUEUE_NAME_LENGTH

QUEUE_PREFIX = "flow_"
# A slug becomes part of the queue name and of the PGFLOW_<SLUG>_ENABLED variable, so it uses
# pgmq's characters and starts with a letter.
MAX_SLUG_LENGTH = MAX_QUEUE_NAME_LENGTH - len(QUEUE_PREFIX)
MAX_STEP_NAME_LENGTH = 100  # the length of StepState.name
_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")


class FlowDefinitionError(ValueError):
    """A flow definition is invalid; the message names the flow, the step and the fix."""


@dataclass(frozen=True)
class Step:
    """One step of a flow.

    ``handler`` receives a ``StepContext`` and returns a JSON-serializable output, or a
    ``Wait`` to complete later with the payload of an event (see ``events.py``). ``max_attempts``
    ``None`` means ``settings.WORKER_MAX_ATTEMPTS``, read when the step runs. Retry n waits
    ``base_delay * 2^(n-1)`` seconds (capped by ``WORKER_BACKOFF_MAX_SECONDS``). ``timeout`` in
    seconds bounds one attempt; ``None`` leaves it to the worker's visibility timeout.
    """

    name: str
    handler: Callable[..., Any]
    depends_on: tuple[str, ...] = ()
    max_attempts: int | None = None
    base_delay: float = 1.0
    timeout: float | None = None

    def __post_init__(self):
        # A single name given as a string would otherwise be read as a tuple of characters.
        if isinstance(self.depends_on, str):
            object.__setattr__(self, "depends_on", (self.depends_on,))
        else:
            object.__setattr__(self, "depends_on", tuple(self.depends_on))


class Flow:
    """Base class of flows: set ``slug`` and ``steps`` on a subclass to define and register one.

    A subclass with ``abstract = True`` is neither checked nor registered, so shared bases stay
    possible. The queue of a flow's step tasks is ``flow_<slug>``.
    """

    slug: ClassVar[str]
    steps: ClassVar[tuple[Step, ...]]
    abstract: ClassVar[bool] = True

    # Filled in by ``__init_subclass__``.
    step_map: ClassVar[dict[str, Step]]
    dependents: ClassVar[dict[str, tuple[str, ...]]]
    root_steps: ClassVar[tuple[str, ...]]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("abstract", False):
            return
        cls.abstract = False
        validate_flow(cls)
        cls.steps = tuple(cls.steps)
        cls.step_map = {step.name: step for step in cls.steps}
        cls.dependents = {
            step.name: tuple(other.name for other in cls.steps if step.name in other.depends_on) for step in cls.steps
        }
        cls.root_steps = tuple(step.name for step in cls.steps if not step.depends_on)
        register_flow(cls)

    @classmethod
    def on_run_stopped(cls, run) -> None:
        """React to a run that failed or was cancelled (``run.status``, ``run.error``); does nothing by default.

        Called in the transaction that stops the run, by a worker or ``cancel_run``, so what it
        writes commits with the stop. Runs executed eagerly report their failure to the caller instead.
        """

    @classmethod
    def queue_name(cls) -> str:
        return f"{QUEUE_PREFIX}{cls.slug}"

    @classmethod
    def enabled_variable(cls) -> str:
        return f"PGFLOW_{cls.slug.upper()}_ENABLED"


def validate_flow(flow: type) -> None:
    """Raise ``FlowDefinitionError`` unless ``flow`` has a valid slug and a valid, acyclic set of steps."""
    slug = flow.__dict__.get("slug")
    label = f"Flow {flow.__qualname__}"
    if not isinstance(slug, str) or not _NAME_PATTERN.fullmatch(slug) or len(slug) > MAX_SLUG_LENGTH:
        raise FlowDefinitionError(
            f"{label} has slug {slug!r}: set a slug of lowercase letters, digits and underscores that "
            f"starts with a letter, at most {MAX_SLUG_LENGTH} characters."
        )
    label = f"Flow {slug!r}"
    steps = getattr(flow, "steps", None)
    if not isinstance(steps, (list, tuple)) or not steps:
        raise FlowDefinitionError(f"{label} has no steps: set steps to a list of Step(...) objects.")

    seen: set[str] = set()
    for step in steps:
        if not isinstance(step, Step):
            raise FlowDefinitionError(f"{label} lists {step!r} among its steps: use Step(name, handler, ...).")
        _validate_step(label, step)
        if step.name in seen:
            raise FlowDefinitionError(f"{label} step {step.name!r} is defined twice: give each step a distinct name.")
        seen.add(step.name)

    for step in steps:
        for dependency in step.depends_on:
            if dependency == step.name:
                raise FlowDefinitionError(f"{label} step {step.name!r} depends on itself: remove it from depends_on.")
            if dependency not in seen:
                raise FlowDefinitionError(
                    f"{label} step {step.name!r} depends on unknown step {dependency!r}; "
                    f"known steps: {', '.join(sorted(seen))}."
                )
        if len(set(step.depends_on)) != len(step.depends_on):
            raise FlowDefinitionError(f"{label} step {step.name!r} lists a dependency twice in depends_on.")

    cycle = _find_cycle({step.name: step.depends_on for step in steps})
    if cycle:
        raise FlowDefinitionError(
            f"{label} has a dependency cycle through step {cycle[0]!r}: {' -> '.join(cycle)}. "
            "Remove one of these dependencies."
        )


def _validate_step(label: str, step: Step) -> None:
    name = step.name
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name) or len(name) > MAX_STEP_NAME_LENGTH:
        raise FlowDefinitionError(
            f"{label} has a step named {name!r}: use lowercase letters, digits and underscores, starting "
            f"with a letter, at most {MAX_STEP_NAME_LENGTH} characters."
        )
    prefix = f"{label} step {name!r}"
    if not callable(step.handler):
        raise FlowDefinitionError(f"{prefix} has handler {step.handler!r}, which is not callable.")
    for dependency in step.depends_on:
        if not isinstance(dependency, str):
            raise FlowDefinitionError(f"{prefix} lists {dependency!r} in depends_on: give step names as strings.")
    if step.max_attempts is not None and (
        not isinstance(step.max_attempts, int) or isinstance(step.max_attempts, bool) or step.max_attempts < 1
    ):
        raise FlowDefinitionError(
            f"{prefix} has max_attempts={step.max_attempts!r}: give a whole number >= 1, or None for WORKER_MAX_ATTEMPTS."
        )
    if not _is_seconds(step.base_delay, allow_zero=True):
        raise FlowDefinitionError(f"{prefix} has base_delay={step.base_delay!r}: give a finite number of seconds >= 0.")
    if step.timeout is not None and not _is_seconds(step.timeout, allow_zero=False):
        raise FlowDefinitionError(f"{prefix} has timeout={step.timeout!r}: give a finite number of seconds > 0, or None.")


def _is_seconds(value: object, *, allow_zero: bool) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return False
    return value >= 0 if allow_zero else value > 0


def _find_cycle(graph: dict[str, tuple[str, ...]]) -> list[str] | None:
    """Return one cycle as a path that starts and ends at the same step, or ``None`` if the graph is acyclic."""
    unvisited, in_progress, done = 0, 1, 2
    state = dict.fromkeys(graph, unvisited)
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = in_progress
        path.append(name)
        for dependency in graph[name]:
            if state[dependency] == in_progress:
                return path[path.index(dependency):] + [dependency]
            if state[dependency] == unvisited:
                found = visit(dependency)
                if found:
                    return found
        path.pop()
        state[name] = done
        return None

    for name in graph:
        if state[name] == unvisited:
            found = visit(name)
            if found:
                return found
    return None


# --- the table of flows --------------------------------------------------------------------------

_flows: dict[str, type[Flow]] = {}
_on_register: list[Callable[[type[Flow]], None]] = []


def register_flow(flow: type[Flow]) -> None:
    """Add ``flow`` to the table by slug; a second class with the same slug raises ``FlowDefinitionError``."""
    existing = _flows.get(flow.slug)
    if existing is not None and _qualified_name(existing) != _qualified_name(flow):
        raise FlowDefinitionError(
            f"Flow slug {flow.slug!r} of {_qualified_name(flow)} is already used by {_qualified_name(existing)}; "
            "give each flow a distinct slug."
        )
    _flows[flow.slug] = flow
    for callback in _on_register:
        callback(flow)


def on_register(callback: Callable[[type[Flow]], None]) -> None:
    """Call ``callback`` for every flow registered so far and for each one registered later."""
    _on_register.append(callback)
    for flow in list(_flows.values()):
        callback(flow)


def get_flow(slug: str) -> type[Flow]:
    try:
        return _flows[slug]
    except KeyError:
        raise LookupError(
            f"No flow with slug {slug!r} is registered in this process; registered flows: "
            f"{', '.join(sorted(_flows)) or 'none'}. Import its module (see QUANTUM_FLOW_MODULES)."
        ) from None


def registered_flows() -> dict[str, type[Flow]]:
    return dict(sorted(_flows.items()))


def _qualified_name(flow: type) -> str:
    return f"{flow.__module__}.{flow.__qualname__}"


@dataclass
class StepContext:
    """The argument of a step handler: the run's input, its dependencies' outputs and the attempt."""

    run_id: str
    flow: str
    step: str
    input: Any
    outputs: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    max_attempts: int = 1
    deadline: float | None = None  # time.monotonic() value after which the attempt counts as timed out

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    def seconds_left(self) -> float | None:
        """Return the seconds before this attempt times out, or ``None`` when the step has no timeout."""
        import time

        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())
