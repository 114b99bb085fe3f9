"""quantum_flow: durable DAG workflows whose step tasks are pgmq messages.

Import the public names from here: ``Flow``, ``Step``, ``StepContext``, ``Wait``, ``start_flow``,
``cancel_run``, ``retry_run``, ``deliver_event``, ``send_event`` and the exceptions. The names load on first use, because Django
imports this package before its app registry is ready.
"""

_EXPORTS = {
    "Flow": "definitions",
    "Step": "definitions",
    "StepContext": "definitions",
    "FlowDefinitionError": "definitions",
    "get_flow": "definitions",
    "registered_flows": "definitions",
    "StepFailed": "errors",
    "StepTimedOut": "errors",
    "RunConflict": "errors",
    "RunStateError": "errors",
    "Wait": "events",
    "InvalidEvent": "events",
    "deliver_event": "events",
    "send_event": "events",
    "start_flow": "runs",
    "cancel_run": "runs",
    "retry_run": "runs",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
