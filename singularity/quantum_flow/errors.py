"""Exceptions that step handlers raise and that the engine raises to its callers."""


class StepFailed(Exception):
    """Raised by a step handler to fail the step at once, without using its remaining attempts.

    The run fails with this message; a transient problem should raise any other exception (or
    ``singularity.messaging.runtime.RetryLater`` with a delay) so the step is retried.
    """


class StepTimedOut(Exception):
    """An attempt ran longer than its step's ``timeout``; it counts as a failed attempt."""


class RunConflict(ValueError):
    """``start_flow`` got a ``run_id`` that already belongs to a run of another flow."""


class RunStateError(ValueError):
    """A run cannot be cancelled or retried in its current status; the message names the status."""
