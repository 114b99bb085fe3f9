"""Message contracts: the generic checks and the ai_requests / ai_results contracts built on them."""
import enum
import uuid

import pytest

from singularity.llm.contracts import AI_REQUEST, AI_REQUEST_ENVELOPE, AI_RESULT
from singularity.messaging.contracts import Contract, Field, InvalidMessage


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


def _check_even(value: int) -> str | None:
    return None if value % 2 == 0 else f"must be even, got {value}"


SAMPLE = Contract(
    queue="sample",
    fields=(
        Field("name", (str,)),
        Field("count", (int,)),
        Field("ratio", (int, float), required=False),
        Field("colour", (str,), required=False, choices=Colour),
        Field("priority", (int,), required=False, choices=Priority),
        Field("note", (str,), required=False, nullable=True),
        Field("label", (str,), nullable=True),
        Field("pairs", (int,), required=False, check=_check_even),
    ),
)


def sample_body(**fields) -> dict:
    return {"name": "n", "count": 1, "label": "l", **fields}


def error_of(contract: Contract, body) -> str:
    with pytest.raises(InvalidMessage) as raised:
        contract.validate(body)
    return str(raised.value)


# --- generic contract ------------------------------------------------------------------------


def test_contract_returns_valid_body():
    body = sample_body(ratio=0.5, colour="red", priority=2, note="x", pairs=4)

    assert SAMPLE.validate(body) is body


def test_contract_keeps_unknown_fields():
    body = sample_body(extra={"kept": True})

    assert SAMPLE.validate(body)["extra"] == {"kept": True}


@pytest.mark.parametrize(
    ("body", "json_type"),
    [([1, 2], "array"), ("text", "string"), (5, "integer"), (2.5, "number"), (True, "boolean"), (None, "null")],
)
def test_contract_rejects_non_object(body, json_type):
    assert error_of(SAMPLE, body) == f"body must be a JSON object, got {json_type}"


def test_contract_missing_required_field():
    body = sample_body()
    del body["count"]

    assert error_of(SAMPLE, body) == "missing required field 'count'"


def test_contract_optional_field_may_be_absent():
    assert "ratio" not in SAMPLE.validate(sample_body())


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": 7}, "field 'name' must be string, got integer"),
        ({"count": "1"}, "field 'count' must be integer, got string"),
        ({"count": 1.0}, "field 'count' must be integer, got number"),
        ({"count": [1]}, "field 'count' must be integer, got array"),
        ({"ratio": "0.5"}, "field 'ratio' must be integer or number, got string"),
        ({"ratio": {}}, "field 'ratio' must be integer or number, got object"),
    ],
)
def test_contract_wrong_type(fields, expected):
    assert error_of(SAMPLE, sample_body(**fields)) == expected


@pytest.mark.parametrize("value", [True, False])
def test_contract_bool_is_not_integer(value):
    # bool is a subclass of int in Python, but JSON true/false is not a number.
    assert error_of(SAMPLE, sample_body(count=value)) == "field 'count' must be integer, got boolean"


def test_contract_bool_is_not_number():
    assert error_of(SAMPLE, sample_body(ratio=True)) == "field 'ratio' must be integer or number, got boolean"


def test_contract_integer_is_a_number():
    assert SAMPLE.validate(sample_body(ratio=2))["ratio"] == 2


def test_contract_unknown_enum_value():
    message = error_of(SAMPLE, sample_body(colour="green"))

    assert message == "field 'colour' has unknown value 'green'; expected one of red, blue"


def test_contract_enum_value_is_case_sensitive():
    assert "field 'colour'" in error_of(SAMPLE, sample_body(colour="RED"))


def test_contract_unknown_int_enum_value():
    # Integer choices must produce an InvalidMessage too, not a TypeError while listing them.
    message = error_of(SAMPLE, sample_body(priority=3))

    assert message == "field 'priority' has unknown value 3; expected one of 1, 2"


def test_contract_required_field_not_null():
    assert error_of(SAMPLE, sample_body(name=None)) == "field 'name' must not be null"


def test_contract_nullable_required_field():
    assert SAMPLE.validate(sample_body(label=None))["label"] is None


def test_contract_optional_field_may_be_null():
    assert SAMPLE.validate(sample_body(ratio=None))["ratio"] is None


def test_contract_nullable_field_still_checks_type():
    assert error_of(SAMPLE, sample_body(note=3)) == "field 'note' must be string, got integer"


def test_contract_check_names_field():
    assert error_of(SAMPLE, sample_body(pairs=3)) == "field 'pairs' must be even, got 3"


def test_contract_check_skipped_for_wrong_type():
    # The check function may assume the declared type, so it must not see a string.
    assert error_of(SAMPLE, sample_body(pairs="3")) == "field 'pairs' must be integer, got string"


def test_contract_lists_every_problem():
    message = error_of(SAMPLE, {"count": "x", "label": "l", "colour": "green"})

    assert "missing required field 'name'" in message
    assert "field 'count' must be integer, got string" in message
    assert "field 'colour' has unknown value 'green'" in message


ONE_OF = Contract(queue="sample", fields=(Field("a", (str,), required=False),), one_of=(("a", "b"),))


def test_one_of_first_present():
    assert ONE_OF.validate({"a": "x"}) == {"a": "x"}


def test_one_of_second_present():
    assert ONE_OF.validate({"b": 1}) == {"b": 1}


def test_one_of_none_present():
    assert error_of(ONE_OF, {"c": 1}) == "one of a, b is required"


def test_one_of_null_counts_as_absent():
    assert error_of(ONE_OF, {"a": None, "b": None}) == "one of a, b is required"


# --- ai_requests -----------------------------------------------------------------------------


def ai_request(**fields) -> dict:
    body = {
        "request_id": str(uuid.uuid4()),
        "agent_id": "agent-1",
        "task_type": "general",
        "complexity": "simple",
        "messages": [{"role": "user", "content": "hello"}],
    }
    body.update(fields)
    return {key: value for key, value in body.items() if value is not ...}


def test_ai_request_with_messages():
    body = ai_request()

    assert AI_REQUEST.validate(body) is body


def test_ai_request_with_input():
    body = ai_request(messages=..., input="hello")

    assert AI_REQUEST.validate(body)["input"] == "hello"


def test_ai_request_with_every_option():
    body = ai_request(
        model="gpt-4.1-mini",
        max_tokens=100,
        temperature=0.7,
        tools=[{"type": "web_search"}],
        previous_response_id="resp_1",
        created_at="2025-01-01T00:00:00+00:00",
    )

    assert AI_REQUEST.validate(body) is body


@pytest.mark.parametrize("role", ["system", "developer", "user", "assistant"])
def test_ai_request_accepts_role(role):
    assert AI_REQUEST.validate(ai_request(messages=[{"role": role, "content": "x"}]))


@pytest.mark.parametrize("field_name", ["request_id", "agent_id", "task_type", "complexity"])
def test_ai_request_missing_field(field_name):
    body = ai_request(**{field_name: ...})

    assert error_of(AI_REQUEST, body) == f"missing required field '{field_name}'"


@pytest.mark.parametrize("request_id", ["not-a-uuid", "", "1234"])
def test_ai_request_request_id_not_uuid(request_id):
    message = error_of(AI_REQUEST, ai_request(request_id=request_id))

    assert message == f"field 'request_id' must be a UUID in canonical form (8-4-4-4-12 lowercase hex digits), got {request_id!r}"


def test_ai_request_request_id_not_string():
    message = error_of(AI_REQUEST, ai_request(request_id=12))

    assert message == "field 'request_id' must be string, got integer"


def test_ai_request_unknown_task_type():
    message = error_of(AI_REQUEST, ai_request(task_type="poetry"))

    assert message.startswith("field 'task_type' has unknown value 'poetry'; expected one of general, code")


def test_ai_request_unknown_complexity():
    message = error_of(AI_REQUEST, ai_request(complexity="extreme"))

    assert message == "field 'complexity' has unknown value 'extreme'; expected one of simple, medium, complex"


def test_ai_request_needs_messages_or_input():
    assert error_of(AI_REQUEST, ai_request(messages=...)) == "one of messages, input is required"


def test_ai_request_null_messages_and_input():
    assert error_of(AI_REQUEST, ai_request(messages=None, input=None)) == "one of messages, input is required"


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([], "field 'messages' must contain at least one message"),
        (["hello"], "field 'messages' item 0 must be an object with 'role' and 'content'"),
        (
            [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}],
            "field 'messages' item 1 has role 'robot'; expected one of system, developer, user, assistant",
        ),
        (
            [{"content": "a"}],
            "field 'messages' item 0 has role None; expected one of system, developer, user, assistant",
        ),
        ([{"role": "user"}], "field 'messages' item 0 must have 'content' as a string"),
        ([{"role": "user", "content": 5}], "field 'messages' item 0 must have 'content' as a string"),
        ("hello", "field 'messages' must be array, got string"),
        ({"role": "user", "content": "x"}, "field 'messages' must be array, got object"),
    ],
)
def test_ai_request_bad_messages(messages, expected):
    assert error_of(AI_REQUEST, ai_request(messages=messages)) == expected


def test_ai_request_input_not_string():
    message = error_of(AI_REQUEST, ai_request(messages=..., input=["hello"]))

    assert message == "field 'input' must be string, got array"


@pytest.mark.parametrize(
    ("max_tokens", "expected"),
    [
        (0, "field 'max_tokens' must be > 0, got 0"),
        (-5, "field 'max_tokens' must be > 0, got -5"),
        (10.5, "field 'max_tokens' must be integer, got number"),
        (True, "field 'max_tokens' must be integer, got boolean"),
        ("100", "field 'max_tokens' must be integer, got string"),
    ],
)
def test_ai_request_bad_max_tokens(max_tokens, expected):
    assert error_of(AI_REQUEST, ai_request(max_tokens=max_tokens)) == expected


@pytest.mark.parametrize("temperature", [0, 1, 0.0, 1.5, 2])
def test_ai_request_temperature_in_range(temperature):
    assert AI_REQUEST.validate(ai_request(temperature=temperature))["temperature"] == temperature


@pytest.mark.parametrize(
    ("temperature", "expected"),
    [
        (-0.1, "field 'temperature' must be between 0 and 2, got -0.1"),
        (2.5, "field 'temperature' must be between 0 and 2, got 2.5"),
        (False, "field 'temperature' must be integer or number, got boolean"),
        ("0.5", "field 'temperature' must be integer or number, got string"),
    ],
)
def test_ai_request_bad_temperature(temperature, expected):
    assert error_of(AI_REQUEST, ai_request(temperature=temperature)) == expected


def test_ai_request_tools_not_list():
    assert error_of(AI_REQUEST, ai_request(tools={"type": "x"})) == "field 'tools' must be array, got object"


# --- ai_requests envelope --------------------------------------------------------------------


def test_envelope_needs_only_request_id():
    body = {"request_id": str(uuid.uuid4()), "task_type": "poetry"}

    assert AI_REQUEST_ENVELOPE.validate(body) is body


def test_envelope_missing_request_id():
    assert error_of(AI_REQUEST_ENVELOPE, {"oops": 1}) == "missing required field 'request_id'"


def test_envelope_request_id_not_uuid():
    message = error_of(AI_REQUEST_ENVELOPE, {"request_id": "abc"})

    assert message == "field 'request_id' must be a UUID in canonical form (8-4-4-4-12 lowercase hex digits), got 'abc'"


def test_envelope_rejects_non_object():
    assert error_of(AI_REQUEST_ENVELOPE, ["request_id"]) == "body must be a JSON object, got array"


# --- ai_results ------------------------------------------------------------------------------


def ai_result(**fields) -> dict:
    body = {
        "request_id": str(uuid.uuid4()),
        "status": "ok",
        "response": "hello",
        "model": "local-small",
        "provider": "local",
        "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
        "cost_usd": 0.0001,
        "latency_ms": 12.5,
    }
    body.update(fields)
    return {key: value for key, value in body.items() if value is not ...}


def test_ai_result_ok():
    body = ai_result()

    assert AI_RESULT.validate(body) is body


def test_ai_result_error_with_nulls():
    body = ai_result(
        status="error",
        response=None,
        usage=None,
        cost_usd=None,
        model=None,
        provider=None,
        latency_ms=None,
        error={"type": "no_route", "message": "no route"},
    )

    assert AI_RESULT.validate(body) is body


def test_ai_result_integer_cost():
    assert AI_RESULT.validate(ai_result(cost_usd=0))["cost_usd"] == 0


@pytest.mark.parametrize("field_name", ["request_id", "status"])
def test_ai_result_missing_field(field_name):
    assert error_of(AI_RESULT, ai_result(**{field_name: ...})) == f"missing required field '{field_name}'"


def test_ai_result_unknown_status():
    message = error_of(AI_RESULT, ai_result(status="done"))

    assert message == "field 'status' has unknown value 'done'; expected one of ok, error"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"cost_usd": "0.1"}, "field 'cost_usd' must be integer or number, got string"),
        ({"latency_ms": True}, "field 'latency_ms' must be integer or number, got boolean"),
        ({"usage": [1, 2]}, "field 'usage' must be object, got array"),
        ({"error": "boom"}, "field 'error' must be object, got string"),
        ({"response": 5}, "field 'response' must be string, got integer"),
        ({"request_id": "r-1"}, "field 'request_id' must be a UUID in canonical form (8-4-4-4-12 lowercase hex digits), got 'r-1'"),
    ],
)
def test_ai_result_wrong_type(fields, expected):
    assert error_of(AI_RESULT, ai_result(**fields)) == expected


@pytest.mark.parametrize(
    "request_id",
    [
        "{12345678-1234-5678-1234-567812345678}",
        "urn:uuid:12345678-1234-5678-1234-567812345678",
        "12345678123456781234567812345678",
        "12345678-1234-5678-1234-56781234567A",
    ],
)
def test_request_id_must_be_canonical(request_id):
    with pytest.raises(InvalidMessage, match="canonical form"):
        AI_REQUEST_ENVELOPE.validate({"request_id": request_id})
