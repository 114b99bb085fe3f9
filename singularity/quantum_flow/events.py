"""Wait-for-event steps: a handler returns ``Wait(event, key)`` and the step completes when that event arrives.

A waiting step keeps no worker thread busy and no connection open: only its row records what it
waits for.

Three paths deliver an event: ``deliver_event`` in the sender's transaction, ``send_event``
through the ``flow_events`` queue, and a database trigger that calls the SQL function
``quantum_flow_deliver_event``. A delivery completes every step waiting for that ``(event, key)``,
with the event's payload as its output, and sends the tasks of the steps that depended on it. It
does so in the delivering transaction, so the event and the run's progress commit together.

An event delivered while no step waits for it is kept in ``FlowEvent`` when it came through
``deliver_event`` or ``send_event``, and a step that starts waiting for it later completes at once.
An advisory lock on ``(event, key)`` orders a delivery and a step starting to wait, so neither can
miss the other. Events delivered by triggers are not kept, because their own table is their record.
A step therefore waits for the reply to a request its own handler sent in the same transaction, and
that reply cannot arrive before the wait is recorded.

A wait with a ``timeout`` fails the step, and with it the run, when no event arrived in time.
"""
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction

from .models import MAX_EVENT_KEY_LENGTH, MAX_EVENT_LENGTH

FLOW_EVENTS_QUEUE = "flow_events"
_EVENT_PATTERN = re.compile(r"[a-z][a-z0-9_.:-]*")


class InvalidEvent(ValueError):
    """An event name, key, timeout or payload is unusable; the message names the value and the fix."""


@dataclass(frozen=True)
class Wait:
    """Returned by a step handler: complete this step when ``event`` arrives for ``key``.

    ``timeout`` in seconds fails the step when nothing arrived by then; ``None`` waits for as long
    as it takes. The step's output becomes the event's payload.
    """

    event: str
    key: str
    timeout: float | None = None

    def __post_init__(self):
        check_event(self.event, self.key)
        timeout = self.timeout
        if timeout is not None and (
            not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not math.isfinite(timeout) or timeout <= 0
        ):
            raise InvalidEvent(f"Wait timeout {timeout!r} is invalid: give a finite number of seconds > 0, or None.")


def event_name_problem(event: object) -> str | None:
    """Return why ``event`` cannot name an event, or None when it can."""
    if isinstance(event, str) and _EVENT_PATTERN.fullmatch(event) and len(event) <= MAX_EVENT_LENGTH:
        return None
    return (
        f"Event name {_shown(event)} is invalid: use lowercase letters, digits and the characters '_.:-', "
        f"starting with a letter, at most {MAX_EVENT_LENGTH} characters (for example 'hitl.decision')."
    )


def is_event_key(key: object) -> bool:
    """Return whether ``key`` is a non-empty string that fits ``StepState.wait_key``."""
    return isinstance(key, str) and bool(key) and len(key) <= MAX_EVENT_KEY_LENGTH


def check_event(event: object, key: object) -> None:
    """Raise ``InvalidEvent`` unless ``event`` and ``key`` can name an event."""
    problem = event_name_problem(event)
    if problem:
        raise InvalidEvent(problem)
    if not is_event_key(key):
        raise InvalidEvent(
            f"Event key {_shown(key)} of event {event!r} is invalid: give a non-empty string of at most "
            f"{MAX_EVENT_KEY_LENGTH} characters, such as the request_id the event answers."
        )


def _shown(value: object, limit: int = 60) -> str:
    """Return ``repr(value)``, shortened with its length when it is long, for error messages."""
    text = repr(value)
    if len(text) <= limit:
        return text
    length = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:limit]}...{length}"


def encode_payload(event: str, payload: Any) -> str:
    try:
        return json.dumps(payload, cls=DjangoJSONEncoder, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"The payload of event {event!r} cannot be stored as JSON: {exc}.") from exc


def lock_event(event: str, key: str) -> None:
    """Take the transaction's advisory lock on ``(event, key)``; the SQL function takes the same one."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('quantum_flow_event:' || %s || ':' || %s, 0))",
            [event, key],
        )


def deliver_event(event: str, key: str, payload: Any = None) -> int:
    """Deliver ``event`` for ``key`` in the caller's transaction; return how many waiting steps it completed.

    With no step waiting, the event is kept for a step that starts waiting later (the first
    delivery of an ``(event, key)`` is the one kept). Raises ``InvalidEvent`` for a bad name, key
    or payload before anything is written.
    """
    check_event(event, key)
    encoded = encode_payload(event, payload)
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute("SELECT quantum_flow_deliver_event(%s, %s, %s::jsonb, true)", [event, key, encoded])
        return cursor.fetchone()[0]


def send_event(event: str, key: str, payload: Any = None) -> int:
    """Send ``event`` to the ``flow_events`` queue, whose consumer delivers it; return the message id.

    Inside ``transaction.atomic()`` the message commits with the caller's writes. Use this from a
    process or app that should not deliver in its own transaction.
    """
    from singularity.models import Queue

    check_event(event, key)
    encode_payload(event, payload)
    return Queue.objects.send(FLOW_EVENTS_QUEUE, {"event": event, "key": key, "payload": payload})
