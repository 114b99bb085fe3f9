"""The table of consumers by name; apps register theirs with the ``consumer`` decorator."""
from dataclasses import dataclass
from typing import Callable

from .contracts import Contract
from .queues import validate_queue_name


@dataclass(frozen=True)
class ConsumerSpec:
    """A queue consumer: its name (for ``run_workers --only``), queue, contract and handler."""

    name: str
    queue: str
    handler: Callable
    contract: Contract | None = None
    max_attempts: int | None = None  # None: settings.WORKER_MAX_ATTEMPTS.
    # True: the runtime calls the handler outside a transaction, and the handler archives or hides
    # the message itself (quantum_flow's step worker commits an attempt before running a step).
    owns_transaction: bool = False
    # Returns why this consumer must not run in this process (a pipeline switched off), or None.
    disabled_reason: Callable[[], str | None] | None = None

    def __post_init__(self):
        # The runtime reads 0 as "use the setting" and dead-letters every message below 1, so reject both.
        valid = self.max_attempts is None or (
            isinstance(self.max_attempts, int) and not isinstance(self.max_attempts, bool) and self.max_attempts >= 1
        )
        if not valid:
            raise ConsumerRegistrationError(
                f"Consumer {self.name!r} has max_attempts={self.max_attempts!r}; give a whole number >= 1, "
                "or None to use WORKER_MAX_ATTEMPTS."
            )


_consumers: dict[str, ConsumerSpec] = {}


class ConsumerRegistrationError(ValueError):
    """A consumer name is taken, or its ``max_attempts`` is invalid."""


def consumer(
    queue: str,
    *,
    name: str | None = None,
    contract: Contract | None = None,
    max_attempts: int | None = None,
    owns_transaction: bool = False,
    disabled_reason: Callable[[], str | None] | None = None,
):
    """Register the decorated function as the handler of ``queue``.

    The handler receives a ``Delivery`` and runs inside the transaction that archives the message,
    so its writes and the acknowledgement commit together, unless ``owns_transaction`` is set.
    """
    validate_queue_name(queue)

    def register(handler: Callable) -> Callable:
        spec = ConsumerSpec(name or queue, queue, handler, contract, max_attempts, owns_transaction, disabled_reason)
        existing = _consumers.get(spec.name)
        if existing is not None and existing.handler is not handler:
            raise ConsumerRegistrationError(
                f"Consumer name {spec.name!r} is already registered for {handler_path(existing.handler)}; "
                "pass a distinct name=."
            )
        _consumers[spec.name] = spec
        return handler

    return register


def handler_path(handler: Callable) -> str:
    """Return ``module.qualname`` of a handler; a callable object is named by its class."""
    named = handler if hasattr(handler, "__qualname__") else type(handler)
    return f"{named.__module__}.{named.__qualname__}"


def registered_consumers() -> dict[str, ConsumerSpec]:
    return dict(sorted(_consumers.items()))


def unregister(name: str) -> None:
    _consumers.pop(name, None)
