"""A flow module whose own import fails, for the QUANTUM_FLOW_MODULES error test; never imported by tests directly."""
import no_such_dependency_for_tests  # noqa: F401
