"""A Django model manager over pgmq's SQL functions, run on Django's own connection.

Because every call goes through Django's connection, a ``send`` inside ``transaction.atomic()``
commits or rolls back together with the model rows written in the same block.
"""
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connections, models
from psycopg.types.json import Jsonb

from .queues import insert_channel, validate_queue_name

DEFAULT_VISIBILITY_TIMEOUT = 30  # seconds
# pgmq declares vt, qty, max_poll_seconds and poll_interval_ms as PostgreSQL INTEGER.
MAX_INTEGER = 2**31 - 1
_NO_QUEUE = object()  # ``_fetch_all`` without a queue; ``None`` is an invalid queue name, not "no queue".


class QueueNotFound(LookupError):
    """The queue has not been created; run ``manage.py migrate`` or ``create`` it first."""


@dataclass(frozen=True)
class Message:
    """A message as pgmq returns it from ``read``, ``pop`` or ``set_vt``."""

    queue: str
    msg_id: int
    read_ct: int
    enqueued_at: datetime
    vt: datetime
    body: Any
    headers: dict | None


@dataclass(frozen=True)
class QueueMetrics:
    """pgmq's figures for one queue; ages are in seconds and ``None`` when the queue is empty."""

    queue_name: str
    queue_length: int
    visible_length: int
    newest_msg_age_sec: int | None
    oldest_msg_age_sec: int | None
    total_messages: int
    scrape_time: datetime


def _jsonb(value: Any) -> Jsonb:
    """Serialize ``value`` now, so a value that is not JSON fails here and not in the server.

    NaN and infinity would become ``NaN``/``Infinity``, which PostgreSQL rejects with an error
    that aborts the caller's transaction; they raise ``ValueError`` before any SQL instead.
    """
    try:
        text = json.dumps(value, cls=DjangoJSONEncoder, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"A message body or headers value cannot be sent as JSON: {exc}.") from exc
    return Jsonb(value, dumps=lambda _obj: text)


def _loads(value: Any) -> Any:
    # Django registers a text loader for jsonb on psycopg 3, so bodies arrive as strings.
    return json.loads(value) if isinstance(value, (str, bytes)) else value


_MESSAGE_COLUMNS = "msg_id, read_ct, enqueued_at, vt, message, headers"


class PgmqManager(models.Manager):
    """Wrap pgmq's functions; every value is a bound parameter and every queue name is validated."""

    # --- queues -----------------------------------------------------------------------------

    def create(self, queue: str, *, notify: bool = True) -> None:
        """Create ``queue`` (a no-op if it exists) and, with ``notify``, announce inserts on it."""
        validate_queue_name(queue)
        self._execute("SELECT pgmq.create(%s)", [queue])
        if notify:
            # Throttle 0: every insert notifies, so an idle consumer wakes within milliseconds.
            self._execute("SELECT pgmq.enable_notify_insert(%s, 0)", [queue])

    def drop(self, queue: str) -> bool:
        """Drop ``queue`` and its archive; return whether it existed."""
        validate_queue_name(queue)
        if not self.exists(queue):
            return False
        return bool(self._fetch_value("SELECT pgmq.drop_queue(%s)", [queue]))

    def exists(self, queue: str) -> bool:
        validate_queue_name(queue)
        return self._fetch_value("SELECT EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = %s)", [queue])

    def queue_names(self) -> list[str]:
        return [row[0] for row in self._fetch_all("SELECT queue_name FROM pgmq.meta ORDER BY queue_name", [])]

    # --- producing --------------------------------------------------------------------------

    def send(self, queue: str, body: Any, *, delay: float = 0, headers: dict | None = None) -> int:
        """Send one message, visible after ``delay`` seconds; return its ``msg_id``."""
        self._check_delay(delay)
        return self._fetch_value(
            "SELECT * FROM pgmq.send(%s, %s, %s, clock_timestamp() + make_interval(secs => %s))",
            [queue, _jsonb(body), _jsonb(headers) if headers is not None else None, float(delay)],
            queue=queue,
        )

    def send_batch(self, queue: str, bodies: Sequence[Any], *, delay: float = 0) -> list[int]:
        """Send several messages in one statement; return their ``msg_id`` values in order."""
        self._check_delay(delay)
        if not bodies:
            return []
        rows = self._fetch_all(
            "SELECT * FROM pgmq.send_batch(%s, %s::jsonb[], NULL, clock_timestamp() + make_interval(secs => %s))",
            [queue, [_jsonb(body) for body in bodies], float(delay)],
            queue=queue,
        )
        return [row[0] for row in rows]

    # --- consuming --------------------------------------------------------------------------

    def read(self, queue: str, *, vt: int = DEFAULT_VISIBILITY_TIMEOUT, qty: int = 1) -> list[Message]:
        """Read up to ``qty`` visible messages and hide them for ``vt`` seconds."""
        self._check_read_args(vt, qty)
        rows = self._fetch_all(f"SELECT {_MESSAGE_COLUMNS} FROM pgmq.read(%s, %s, %s)", [queue, vt, qty], queue=queue)
        return [self._message(queue, row) for row in rows]

    def read_with_poll(
        self,
        queue: str,
        *,
        vt: int = DEFAULT_VISIBILITY_TIMEOUT,
        qty: int = 1,
        max_poll_seconds: int = 5,
        poll_interval_ms: int = 100,
    ) -> list[Message]:
        """Like ``read``, but wait inside the server up to ``max_poll_seconds`` for a message."""
        self._check_read_args(vt, qty)
        self._check_integer("max_poll_seconds", max_poll_seconds, minimum=0)
        self._check_integer("poll_interval_ms", poll_interval_ms, minimum=1)
        rows = self._fetch_all(
            f"SELECT {_MESSAGE_COLUMNS} FROM pgmq.read_with_poll(%s, %s, %s, %s, %s)",
            [queue, vt, qty, max_poll_seconds, poll_interval_ms],
            queue=queue,
        )
        return [self._message(queue, row) for row in rows]

    def pop(self, queue: str, *, qty: int = 1) -> list[Message]:
        """Read and delete up to ``qty`` visible messages at once."""
        self._check_read_args(1, qty)
        rows = self._fetch_all(f"SELECT {_MESSAGE_COLUMNS} FROM pgmq.pop(%s, %s)", [queue, qty], queue=queue)
        return [self._message(queue, row) for row in rows]

    def archive(self, queue: str, msg_id: int) -> bool:
        """Move a message to the queue's archive table; return whether it was there."""
        return bool(self._fetch_value("SELECT pgmq.archive(%s, %s::bigint)", [queue, msg_id], queue=queue))

    def archive_batch(self, queue: str, msg_ids: Iterable[int]) -> list[int]:
        """Archive several messages; return the ids that were archived."""
        ids = list(msg_ids)
        rows = self._fetch_all("SELECT * FROM pgmq.archive(%s, %s::bigint[])", [queue, ids], queue=queue)
        return [row[0] for row in rows]

    def delete(self, queue: str, msg_id: int) -> bool:
        """Delete a message for good; return whether it was there."""
        return bool(self._fetch_value("SELECT pgmq.delete(%s, %s::bigint)", [queue, msg_id], queue=queue))

    def delete_batch(self, queue: str, msg_ids: Iterable[int]) -> list[int]:
        ids = list(msg_ids)
        rows = self._fetch_all("SELECT * FROM pgmq.delete(%s, %s::bigint[])", [queue, ids], queue=queue)
        return [row[0] for row in rows]

    def set_vt(self, queue: str, msg_id: int, delay: float) -> Message | None:
        """Make a message visible again ``delay`` seconds from now; return it, or ``None`` if it is gone."""
        self._check_delay(delay)
        rows = self._fetch_all(
            f"SELECT {_MESSAGE_COLUMNS} FROM pgmq.set_vt(%s, %s::bigint, clock_timestamp() + make_interval(secs => %s))",
            [queue, msg_id, float(delay)],
            queue=queue,
        )
        # pgmq returns one all-NULL row when the message does not exist.
        rows = [row for row in rows if row[0] is not None]
        return self._message(queue, rows[0]) if rows else None

    # --- operating --------------------------------------------------------------------------

    def metrics(self, queue: str) -> QueueMetrics:
        row = self._fetch_all(
            "SELECT queue_name, queue_length, queue_visible_length, newest_msg_age_sec, oldest_msg_age_sec, "
            "total_messages, scrape_time FROM pgmq.metrics(%s)",
            [queue],
            queue=queue,
        )[0]
        return QueueMetrics(*row)

    def metrics_all(self) -> list[QueueMetrics]:
        rows = self._fetch_all(
            "SELECT queue_name, queue_length, queue_visible_length, newest_msg_age_sec, oldest_msg_age_sec, "
            "total_messages, scrape_time FROM pgmq.metrics_all() ORDER BY queue_name",
            [],
        )
        return [QueueMetrics(*row) for row in rows]

    def purge(self, queue: str) -> int:
        """Delete every message in ``queue``; return how many there were."""
        return self._fetch_value("SELECT pgmq.purge_queue(%s)", [queue], queue=queue)

    def seconds_until_next_visible(self, queue: str) -> float | None:
        """Return how long until the earliest hidden message becomes visible, or ``None`` if none is hidden."""
        # The table name cannot be a bound parameter; the validated name contains only [a-z0-9_].
        table = connections[self.db].ops.quote_name(f"q_{validate_queue_name(queue)}")
        value = self._fetch_value(
            f"SELECT EXTRACT(epoch FROM min(vt) - clock_timestamp()) FROM pgmq.{table} WHERE vt > clock_timestamp()",
            [],
            queue=queue,
        )
        return None if value is None else max(0.0, float(value))

    def release(self, queue: str, msg_ids: Iterable[int]) -> list[int]:
        """Make read messages visible now and take back their read, as if they had never been read.

        For a consumer that stops before handling what it read: unlike ``set_vt``, the read does
        not count as an attempt. Returns the ids that were still in the queue.
        """
        table = connections[self.db].ops.quote_name(f"q_{validate_queue_name(queue)}")
        ids = list(msg_ids)
        if not ids:
            return []
        rows = self._fetch_all(
            f"UPDATE pgmq.{table} SET vt = clock_timestamp(), read_ct = GREATEST(read_ct - 1, 0) "
            "WHERE msg_id = ANY(%s::bigint[]) RETURNING msg_id",
            [ids],
            queue=queue,
        )
        return sorted(row[0] for row in rows)

    def notify_enabled(self, queue: str) -> bool:
        validate_queue_name(queue)
        return self._fetch_value(
            "SELECT EXISTS (SELECT 1 FROM pgmq.notify_insert_throttle WHERE queue_name = %s)", [queue]
        )

    @staticmethod
    def insert_channel(queue: str) -> str:
        return insert_channel(queue)

    # --- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _check_delay(delay: float) -> None:
        # NaN passes a ``< 0`` test and infinity overflows PostgreSQL's interval: reject both here.
        if not isinstance(delay, (int, float)) or isinstance(delay, bool) or not math.isfinite(delay) or delay < 0:
            raise ValueError(f"delay={delay!r} is invalid: give a finite number of seconds >= 0.")

    @classmethod
    def _check_read_args(cls, vt: int, qty: int) -> None:
        cls._check_integer("vt", vt, minimum=0, unit=" of seconds")
        cls._check_integer("qty", qty, minimum=1)

    @staticmethod
    def _check_integer(name: str, value: Any, *, minimum: int, unit: str = "") -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= MAX_INTEGER:
            raise ValueError(
                f"{name}={value!r} is invalid: give a whole number{unit} from {minimum} to {MAX_INTEGER}."
            )

    @staticmethod
    def _message(queue: str, row: Sequence[Any]) -> Message:
        msg_id, read_ct, enqueued_at, vt, body, headers = row
        return Message(queue, msg_id, read_ct, enqueued_at, vt, _loads(body), _loads(headers))

    def _execute(self, sql: str, params: list) -> None:
        with connections[self.db].cursor() as cursor:
            cursor.execute(sql, params)

    def _fetch_all(self, sql: str, params: list, *, queue: Any = _NO_QUEUE) -> list[tuple]:
        if queue is not _NO_QUEUE:
            validate_queue_name(queue)
        try:
            with connections[self.db].cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        except DatabaseError as exc:
            if queue is not _NO_QUEUE and _is_missing_table(exc):
                raise QueueNotFound(
                    f"Queue {queue!r} does not exist. Run 'manage.py migrate' to create the project's "
                    "queues, or create it with Queue.objects.create()."
                ) from exc
            raise

    def _fetch_value(self, sql: str, params: list, *, queue: Any = _NO_QUEUE) -> Any:
        rows = self._fetch_all(sql, params, queue=queue)
        return rows[0][0] if rows else None


def _is_missing_table(exc: DatabaseError) -> bool:
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) == "42P01"  # undefined_table
