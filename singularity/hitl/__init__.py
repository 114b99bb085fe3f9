"""Human-in-the-loop on the agents' side: ask observer's approvers and wait for their decision.

The names below are loaded on first use, so importing this package does not need Django's app
registry to be ready.
"""
from importlib import import_module

_EXPORTS = {
    "request_approval": "client",
    "ask_question": "client",
    "submit_approval": "client",
    "submit_question": "client",
    "await_decision": "client",
    "Decision": "client",
    "HitlHandle": "client",
    "DecisionTimeout": "client",
    "InvalidHitlRequest": "client",
    "UnknownHitlRequest": "client",
    "DecisionStatus": "contracts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
