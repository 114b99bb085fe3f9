"""Flow definitions are checked when the class is defined; errors name the flow, the step and the fix."""
import pytest

from singularity.messaging.registry import unregister
from singularity.quantum_flow import Flow, FlowDefinitionError, Step, get_flow
from singularity.quantum_flow.definitions import MAX_SLUG_LENGTH, _flows
from tests.quantum_flow_flows import DiamondFlow


def handler(context):
    return None


def define(slug="defs_ok", steps=()):
    """Define a flow class, and drop it from the table again so tests do not leak flows."""
    try:
        return type("Defined", (Flow,), {"slug": slug, "steps": steps})
    finally:
        _flows.pop(slug, None)
        unregister(f"flow_{slug}")


def test_valid_flow_has_graph():
    flow = define(steps=(Step("a", handler), Step("b", handler, depends_on="a"), Step("c", handler, depends_on=["a", "b"])))

    assert flow.root_steps == ("a",)
    assert flow.dependents == {"a": ("b", "c"), "b": ("c",), "c": ()}
    assert flow.step_map["b"].depends_on == ("a",)
    assert flow.queue_name() == "flow_defs_ok"
    assert flow.enabled_variable() == "PGFLOW_DEFS_OK_ENABLED"


def test_registered_flow_found_by_slug():
    assert get_flow("test_diamond") is DiamondFlow


def test_unknown_flow_lookup_names_slug():
    with pytest.raises(LookupError, match="'nope'"):
        get_flow("nope")


def test_unknown_dependency_rejected():
    with pytest.raises(FlowDefinitionError) as error:
        define(steps=(Step("a", handler), Step("b", handler, depends_on=["z"])))

    message = str(error.value)
    assert "Flow 'defs_ok'" in message
    assert "step 'b'" in message
    assert "unknown step 'z'" in message
    assert "known steps: a, b" in message


def test_cycle_rejected_with_path():
    with pytest.raises(FlowDefinitionError) as error:
        define(
            steps=(
                Step("a", handler),
                Step("b", handler, depends_on=["a", "d"]),
                Step("c", handler, depends_on=["b"]),
                Step("d", handler, depends_on=["c"]),
            )
        )

    message = str(error.value)
    assert "Flow 'defs_ok'" in message
    assert "cycle" in message
    assert "b -> d -> c -> b" in message


def test_self_dependency_rejected():
    with pytest.raises(FlowDefinitionError, match="step 'a' depends on itself"):
        define(steps=(Step("a", handler, depends_on=["a"]),))


def test_duplicate_step_rejected():
    with pytest.raises(FlowDefinitionError, match="Flow 'defs_ok' step 'a' is defined twice"):
        define(steps=(Step("a", handler), Step("a", handler)))


def test_repeated_dependency_rejected():
    with pytest.raises(FlowDefinitionError, match="step 'b' lists a dependency twice"):
        define(steps=(Step("a", handler), Step("b", handler, depends_on=["a", "a"])))


@pytest.mark.parametrize(
    "slug",
    ["", "Upper", "1starts_with_digit", "has-dash", "has space", "x" * (MAX_SLUG_LENGTH + 1), None, 42],
)
def test_bad_slug_rejected(slug):
    with pytest.raises(FlowDefinitionError) as error:
        define(slug=slug, steps=(Step("a", handler),))

    assert repr(slug) in str(error.value)
    assert "lowercase letters" in str(error.value)


@pytest.mark.parametrize("name", ["", "Bad", "has-dash", "9lives", 7])
def test_bad_step_name_rejected(name):
    with pytest.raises(FlowDefinitionError) as error:
        define(steps=(Step(name, handler),))

    assert "Flow 'defs_ok'" in str(error.value)
    assert repr(name) in str(error.value)


def test_no_steps_rejected():
    with pytest.raises(FlowDefinitionError, match="Flow 'defs_ok' has no steps"):
        define(steps=())


def test_non_step_entry_rejected():
    with pytest.raises(FlowDefinitionError, match="use Step"):
        define(steps=("a",))


def test_handler_must_be_callable():
    with pytest.raises(FlowDefinitionError, match="step 'a' has handler 'not callable', which is not callable"):
        define(steps=(Step("a", "not callable"),))


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"max_attempts": 0}, "max_attempts=0"),
        ({"max_attempts": True}, "max_attempts=True"),
        ({"base_delay": -1}, "base_delay=-1"),
        ({"base_delay": float("nan")}, "base_delay=nan"),
        ({"timeout": 0}, "timeout=0"),
        ({"timeout": float("inf")}, "timeout=inf"),
    ],
)
def test_bad_step_option_rejected(options, fragment):
    with pytest.raises(FlowDefinitionError) as error:
        define(steps=(Step("a", handler, **options),))

    assert "Flow 'defs_ok' step 'a'" in str(error.value)
    assert fragment in str(error.value)


def test_duplicate_slug_rejected():
    with pytest.raises(FlowDefinitionError, match="already used by tests.quantum_flow_flows.DiamondFlow"):
        type("Other", (Flow,), {"slug": "test_diamond", "steps": (Step("a", handler),)})


def test_abstract_base_not_registered():
    base = type("Base", (Flow,), {"abstract": True})

    assert base.abstract is True
    assert "Base" not in {flow.__name__ for flow in _flows.values()}
