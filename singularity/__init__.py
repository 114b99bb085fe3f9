"""Singularity: the Django project and the agents' side of the system."""

# The human-in-the-loop API, importable as ``from singularity import request_approval``. Loaded on
# first use, because settings import this package before Django's app registry exists.
_HITL_EXPORTS = frozenset(
    {"request_approval", "ask_question", "submit_approval", "submit_question", "await_decision", "HitlHandle"}
)


def __getattr__(name: str):
    if name in _HITL_EXPORTS:
        from singularity import hitl

        return getattr(hitl, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
