"""Checks of a model's response against the small JSON shape each agent expects."""
import json
import re
from dataclasses import dataclass

from .base import AgentOutputError

# A model often wraps JSON in a Markdown code fence; the fence is removed, nothing else is.
_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```\s*$", re.DOTALL)


@dataclass(frozen=True)
class Field:
    """One expected key: its name, accepted types, and whether it may be missing."""

    name: str
    types: tuple[type, ...]
    required: bool = True
    non_empty: bool = False


def parse_json_object(text: str, fields: tuple[Field, ...]) -> dict:
    """Parse ``text`` as one JSON object and check ``fields``; raise ``AgentOutputError`` naming the fault."""
    stripped = (text or "").strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1)
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise AgentOutputError(f"The model's response is not JSON ({exc.msg} at position {exc.pos}).") from exc
    if not isinstance(data, dict):
        raise AgentOutputError(f"The model's response is JSON {type(data).__name__}, not an object.")
    for field in fields:
        if field.name not in data:
            if field.required:
                raise AgentOutputError(f"The model's response has no {field.name!r} field.")
            continue
        value = data[field.name]
        if (isinstance(value, bool) and bool not in field.types) or not isinstance(value, field.types):
            expected = " or ".join(kind.__name__ for kind in field.types)
            raise AgentOutputError(
                f"The model's response has {field.name!r} of type {type(value).__name__}; expected {expected}."
            )
        if field.non_empty and not value:
            raise AgentOutputError(f"The model's response has an empty {field.name!r}.")
    return data
