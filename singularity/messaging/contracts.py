"""Declarative checks for message bodies: a body that fails them is dead-lettered with the reason."""
import enum
from dataclasses import dataclass, field
from typing import Any, Callable


class InvalidMessage(ValueError):
    """A message body breaks its queue's contract; the message names the field and the reason."""


@dataclass(frozen=True)
class Field:
    """One top-level field of a message body."""

    name: str
    types: tuple[type, ...]
    required: bool = True
    choices: type[enum.Enum] | None = None
    nullable: bool = False
    check: Callable[[Any], str | None] | None = None  # Returns an error text, or None when valid.


@dataclass(frozen=True)
class Contract:
    """The fields a queue's message bodies must have; unknown fields are allowed and kept."""

    queue: str
    fields: tuple[Field, ...]
    one_of: tuple[tuple[str, ...], ...] = field(default=())  # Groups of which at least one must be present.

    def validate(self, body: Any) -> dict:
        """Return ``body`` if it honours the contract, else raise ``InvalidMessage``."""
        if not isinstance(body, dict):
            raise InvalidMessage(
                f"body must be a JSON object, got {_json_type(body)}"
            )
        problems = []
        for spec in self.fields:
            problem = _check_field(spec, body)
            if problem:
                problems.append(problem)
        for names in self.one_of:
            if not any(body.get(name) is not None for name in names):
                problems.append(f"one of {', '.join(names)} is required")
        if problems:
            raise InvalidMessage("; ".join(problems))
        return body


def _check_field(spec: Field, body: dict) -> str | None:
    if spec.name not in body:
        return f"missing required field '{spec.name}'" if spec.required else None
    value = body[spec.name]
    if value is None:
        return None if (spec.nullable or not spec.required) else f"field '{spec.name}' must not be null"
    if isinstance(value, bool) and bool not in spec.types:
        return f"field '{spec.name}' must be {_type_names(spec.types)}, got boolean"
    if not isinstance(value, spec.types):
        return f"field '{spec.name}' must be {_type_names(spec.types)}, got {_json_type(value)}"
    if spec.choices is not None:
        allowed = [member.value for member in spec.choices]
        if value not in allowed:
            expected = ", ".join(str(choice) for choice in allowed)  # Choices may be ints (an IntEnum).
            return f"field '{spec.name}' has unknown value {value!r}; expected one of {expected}"
    if spec.check is not None:
        problem = spec.check(value)
        if problem:
            return f"field '{spec.name}' {problem}"
    return None


_JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", int: "integer", float: "number", bool: "boolean"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for python_type, name in _JSON_TYPE_NAMES.items():
        if type(value) is python_type:
            return name
    return type(value).__name__


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join(_JSON_TYPE_NAMES.get(python_type, python_type.__name__) for python_type in types)
