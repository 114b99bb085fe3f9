"""The consumer runtime in this process: archive, retry with backoff, dead-letter, stop.

Most tests run inside the test's transaction, where the runtime's ``atomic`` blocks become
savepoints. The tests of the ``run`` loop use a real thread, so they need a committed database.
"""
import logging
import math
import threading
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, models

from singularity.messaging.contracts import Contract, Field, InvalidMessage
from singularity.messaging.notifications import NotificationHub
from singularity.messaging.queues import DEAD_LETTERS, QueueNameError
from singularity.messaging.registry import (
    ConsumerRegistrationError,
    ConsumerSpec,
    consumer,
    handler_path,
    registered_consumers,
    unregister,
)
from singularity.messaging.runtime import ConsumerWorker, DeadLetter, Outcome, RetryLater, backoff_delay
from singularity.models import LlmRequest
from tests.conftest import wait_for

QUEUE = "test_runtime"
RUNTIME_LOGGER = "singularity.messaging.runtime"


class Colour(models.TextChoices):
    RED = "red"
    BLUE = "blue"


CONTRACT = Contract(
    queue=QUEUE,
    fields=(
        Field("request_id", (str,)),
        Field("count", (int,)),
        Field("colour", (str,), required=False, choices=Colour),
    ),
)


def message_body(**fields) -> dict:
    return {"request_id": "req-1", "count": 1, **fields}


def make_worker(handler, *, contract=CONTRACT, max_attempts=None, batch_size=None, hub=None) -> ConsumerWorker:
    spec = ConsumerSpec("test_consumer", QUEUE, handler, contract, max_attempts)
    # An unstarted hub: run_once and handle never wait for notifications.
    return ConsumerWorker(spec, hub or NotificationHub(), batch_size=batch_size)


def write_marker(agent_id: str) -> None:
    """Write a model row whose survival shows whether the handler's transaction committed."""
    LlmRequest.objects.create(agent_id=agent_id, task_type="general", complexity="simple", messages="x")


def marker_exists(agent_id: str) -> bool:
    return LlmRequest.objects.filter(agent_id=agent_id).exists()


class Recorder:
    """A handler that records each delivery, writes a marker row, then calls ``action``."""

    def __init__(self, action=None, marker: str | None = None):
        self.action = action
        self.marker = marker
        self.deliveries = []

    def __call__(self, delivery):
        self.deliveries.append(delivery)
        if self.marker:
            write_marker(self.marker)
        return self.action(delivery) if self.action else None

    @property
    def calls(self) -> int:
        return len(self.deliveries)


def fail_with(exc: Exception):
    def action(delivery):
        raise exc

    return action


def fetch_row(table: str, msg_id: int) -> dict | None:
    quoted = connection.ops.quote_name(table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT msg_id, read_ct, vt, message FROM pgmq.{quoted} WHERE msg_id = %s", [msg_id])
        row = cursor.fetchone()
    if row is None:
        return None
    return {"msg_id": row[0], "read_ct": row[1], "vt": row[2], "message": row[3]}


def queued(msg_id: int, queue: str = QUEUE) -> dict | None:
    return fetch_row(f"q_{queue}", msg_id)


def archived(msg_id: int, queue: str = QUEUE) -> dict | None:
    return fetch_row(f"a_{queue}", msg_id)


def dead_letters_for(msg_id: int, queue: str = QUEUE) -> list[dict]:
    """Return the dead_letters bodies that name this message; other tests may have left others."""
    import json

    quoted = connection.ops.quote_name(f"q_{DEAD_LETTERS}")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT message FROM pgmq.{quoted} WHERE message->>'queue' = %s AND (message->>'msg_id')::bigint = %s",
            [queue, msg_id],
        )
        rows = cursor.fetchall()
    return [json.loads(row[0]) if isinstance(row[0], str) else row[0] for row in rows]


def db_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def make_visible(queues, msg_id: int) -> None:
    """Let the backoff pass at once, so the next attempt can run without waiting."""
    queues.set_vt(QUEUE, msg_id, 0)


def handle_with_bounds(worker) -> tuple:
    """Run one batch; return the database clock just before and just after it."""
    before = db_now()
    worker.run_once()
    return before, db_now()


@pytest.fixture
def queue(queues, db):
    queues.create(QUEUE)
    return QUEUE


@pytest.fixture
def fast_retries(settings):
    settings.WORKER_MAX_ATTEMPTS = 3
    settings.WORKER_BACKOFF_BASE_SECONDS = 10
    settings.WORKER_BACKOFF_MAX_SECONDS = 1000
    settings.WORKER_BATCH_SIZE = 10
    settings.WORKER_VISIBILITY_TIMEOUT_SECONDS = 60
    return settings


# --- success ---------------------------------------------------------------------------------


def test_success_archives_message(queues, queue):
    handler = Recorder(marker="ok-handler")
    msg_id = queues.send(QUEUE, message_body())

    worker = make_worker(handler)
    outcome = worker.handle(queues.read(QUEUE, vt=60)[0])

    assert outcome == Outcome.ARCHIVED
    assert queued(msg_id) is None
    assert archived(msg_id) is not None
    assert handler.calls == 1


def test_success_keeps_handler_writes(queues, queue):
    queues.send(QUEUE, message_body())

    make_worker(Recorder(marker="kept-write")).run_once()

    assert marker_exists("kept-write")


def test_delivery_carries_body_and_attempt(queues, queue, fast_retries):
    handler = Recorder()
    msg_id = queues.send(QUEUE, message_body(count=7))

    make_worker(handler).run_once()

    delivery = handler.deliveries[0]
    assert delivery.body == {"request_id": "req-1", "count": 7}
    assert delivery.message.msg_id == msg_id
    assert delivery.attempt == 1
    assert delivery.max_attempts == 3
    assert not delivery.is_last_attempt


def test_success_without_contract(queues, queue):
    # Without a contract any JSON value reaches the handler.
    handler = Recorder()
    msg_id = queues.send(QUEUE, ["any", "json"])

    make_worker(handler, contract=None).run_once()

    assert handler.deliveries[0].body == ["any", "json"]
    assert archived(msg_id) is not None


# --- retries ---------------------------------------------------------------------------------


def test_failure_rolls_back_writes(queues, queue, fast_retries):
    queues.send(QUEUE, message_body())

    make_worker(Recorder(fail_with(RuntimeError("boom")), marker="rolled-back")).run_once()

    assert not marker_exists("rolled-back")


def test_failure_hides_message_for_backoff(queues, queue, fast_retries):
    msg_id = queues.send(QUEUE, message_body())
    worker = make_worker(Recorder(fail_with(RuntimeError("boom"))))

    before, after = handle_with_bounds(worker)

    row = queued(msg_id)
    delay = timedelta(seconds=10)  # WORKER_BACKOFF_BASE_SECONDS * 2 ** 0
    assert row["read_ct"] == 1
    assert row["vt"] >= before + delay
    assert row["vt"] <= after + delay
    assert archived(msg_id) is None
    assert worker.run_once() == 0, "the message must stay hidden during the backoff"


def test_backoff_doubles_per_attempt(queues, queue, fast_retries):
    fast_retries.WORKER_MAX_ATTEMPTS = 5
    msg_id = queues.send(QUEUE, message_body())
    worker = make_worker(Recorder(fail_with(RuntimeError("boom"))))

    for attempt in (1, 2, 3, 4):
        before, after = handle_with_bounds(worker)

        row = queued(msg_id)
        delay = timedelta(seconds=10 * 2 ** (attempt - 1))
        assert row["read_ct"] == attempt
        assert before + delay <= row["vt"] <= after + delay, f"attempt {attempt}: vt {row['vt']} not ~{delay} ahead"
        make_visible(queues, msg_id)


def test_backoff_respects_max_setting(queues, queue, fast_retries):
    fast_retries.WORKER_MAX_ATTEMPTS = 5
    fast_retries.WORKER_BACKOFF_MAX_SECONDS = 15
    msg_id = queues.send(QUEUE, message_body())
    worker = make_worker(Recorder(fail_with(RuntimeError("boom"))))
    worker.run_once()
    make_visible(queues, msg_id)

    before, after = handle_with_bounds(worker)

    # Attempt 2 would wait 20 s; the cap makes it 15 s.
    row = queued(msg_id)
    assert before + timedelta(seconds=15) <= row["vt"] <= after + timedelta(seconds=15)


def test_failed_message_reappears(queues, queue, fast_retries):
    fast_retries.WORKER_BACKOFF_BASE_SECONDS = 0.05
    handler = Recorder(fail_with(RuntimeError("boom")))
    msg_id = queues.send(QUEUE, message_body())
    worker = make_worker(handler)
    worker.run_once()

    wait_for(worker.run_once)

    assert handler.calls == 2
    assert handler.deliveries[1].attempt == 2
    assert queued(msg_id)["read_ct"] == 2


def test_handler_database_error_retries(queues, queue, fast_retries):
    # A failed statement aborts the transaction; the runtime must still be able to schedule the retry.
    def divide_by_zero(delivery):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")

    msg_id = queues.send(QUEUE, message_body())

    outcome = make_worker(Recorder(divide_by_zero, marker="db-error")).handle(queues.read(QUEUE, vt=60)[0])

    assert outcome == Outcome.RETRYING
    assert queued(msg_id)["read_ct"] == 1
    assert not marker_exists("db-error")


def test_retry_later_uses_its_delay(queues, queue, fast_retries):
    msg_id = queues.send(QUEUE, message_body())
    worker = make_worker(Recorder(fail_with(RetryLater("rate limited", delay=30))))

    before, after = handle_with_bounds(worker)

    row = queued(msg_id)
    assert before + timedelta(seconds=30) <= row["vt"] <= after + timedelta(seconds=30)
    assert row["read_ct"] == 1


def test_retry_later_zero_delay(queues, queue, fast_retries):
    msg_id = queues.send(QUEUE, message_body())
    worker = make_worker(Recorder(fail_with(RetryLater("try again now", delay=0))))

    worker.run_once()

    assert queued(msg_id)["vt"] <= db_now()


def test_retry_later_without_delay_uses_backoff(queues, queue, fast_retries):
    msg_id = queues.send(QUEUE, message_body())
    worker = make_worker(Recorder(fail_with(RetryLater("busy"))))

    before, after = handle_with_bounds(worker)

    row = queued(msg_id)
    assert before + timedelta(seconds=10) <= row["vt"] <= after + timedelta(seconds=10)


@pytest.mark.parametrize("delay", [-1, math.nan, math.inf, "5", True])
def test_retry_later_rejects_bad_delay(delay):
    with pytest.raises(ValueError) as raised:
        RetryLater("busy", delay=delay)

    assert f"delay={delay!r}" in str(raised.value)


def test_retry_later_bad_delay_still_retries(queues, queue, fast_retries):
    # The handler's ValueError is an ordinary handler error: backoff, not a crashed batch.
    msg_id = queues.send(QUEUE, message_body())
    def retry_with_negative_delay(delivery):
        raise RetryLater("busy", delay=-1)

    worker = make_worker(Recorder(retry_with_negative_delay))

    before, after = handle_with_bounds(worker)

    row = queued(msg_id)
    assert before + timedelta(seconds=10) <= row["vt"] <= after + timedelta(seconds=10)


# --- dead letters ----------------------------------------------------------------------------


def test_max_attempts_dead_letters(queues, queue, fast_retries):
    handler = Recorder(fail_with(RuntimeError("provider down 42")))
    body = message_body(count=5)
    msg_id = queues.send(QUEUE, body)
    worker = make_worker(handler)

    outcomes = []
    for _ in range(3):
        messages = queues.read(QUEUE, vt=60)
        outcomes.append(worker.handle(messages[0]))
        if queued(msg_id) is not None:
            make_visible(queues, msg_id)

    assert outcomes == [Outcome.RETRYING, Outcome.RETRYING, Outcome.DEAD_LETTERED]
    assert handler.calls == 3
    assert queued(msg_id) is None
    assert archived(msg_id) is not None

    [letter] = dead_letters_for(msg_id)
    assert letter["reason"] == "max_attempts_exceeded"
    assert letter["error"] == "RuntimeError: provider down 42"
    assert letter["body"] == body
    assert letter["attempts"] == 3
    assert letter["queue"] == QUEUE


def test_last_attempt_flag(queues, queue, fast_retries):
    handler = Recorder(fail_with(RuntimeError("boom")))
    msg_id = queues.send(QUEUE, message_body())
    worker = make_worker(handler)

    for _ in range(3):
        worker.run_once()
        if queued(msg_id) is not None:
            make_visible(queues, msg_id)

    assert [delivery.is_last_attempt for delivery in handler.deliveries] == [False, False, True]


def test_spec_max_attempts_overrides_setting(queues, queue, fast_retries):
    fast_retries.WORKER_MAX_ATTEMPTS = 5
    handler = Recorder(fail_with(RuntimeError("boom")))
    msg_id = queues.send(QUEUE, message_body())
    worker = make_worker(handler, max_attempts=2)

    worker.run_once()
    make_visible(queues, msg_id)
    worker.run_once()

    assert handler.calls == 2
    assert dead_letters_for(msg_id)[0]["attempts"] == 2


def test_retry_later_on_last_attempt_dead_letters(queues, queue, fast_retries):
    fast_retries.WORKER_MAX_ATTEMPTS = 1
    msg_id = queues.send(QUEUE, message_body())

    make_worker(Recorder(fail_with(RetryLater("still busy", delay=5)))).run_once()

    [letter] = dead_letters_for(msg_id)
    assert letter["reason"] == "max_attempts_exceeded"
    assert letter["error"] == "still busy"
    assert archived(msg_id) is not None


def test_dead_letter_verdict_keeps_writes(queues, queue):
    handler = Recorder(lambda delivery: DeadLetter("unknown_request", "no such request"), marker="verdict-write")
    body = message_body()
    msg_id = queues.send(QUEUE, body)

    outcome = make_worker(handler).handle(queues.read(QUEUE, vt=60)[0])

    assert outcome == Outcome.DEAD_LETTERED
    assert marker_exists("verdict-write")
    assert queued(msg_id) is None
    assert archived(msg_id) is not None

    [letter] = dead_letters_for(msg_id)
    assert letter["reason"] == "unknown_request"
    assert letter["error"] == "no such request"
    assert letter["body"] == body
    assert letter["attempts"] == 1


def test_handler_invalid_message_dead_letters(queues, queue, fast_retries):
    # A handler may find a problem the contract cannot express; that is not worth a retry either.
    handler = Recorder(fail_with(InvalidMessage("field 'count' must be prime")), marker="invalid-in-handler")
    msg_id = queues.send(QUEUE, message_body())

    make_worker(handler).run_once()

    [letter] = dead_letters_for(msg_id)
    assert letter["reason"] == "invalid_body"
    assert letter["error"] == "field 'count' must be prime"
    assert not marker_exists("invalid-in-handler")
    assert handler.calls == 1


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([1, 2], "body must be a JSON object, got array"),
        ("text", "body must be a JSON object, got string"),
        (42, "body must be a JSON object, got integer"),
        (None, "body must be a JSON object, got null"),
        ({"count": 1}, "missing required field 'request_id'"),
        ({"request_id": 5, "count": 1}, "field 'request_id' must be string, got integer"),
        ({"request_id": "r", "count": "1"}, "field 'count' must be integer, got string"),
        ({"request_id": "r", "count": True}, "field 'count' must be integer, got boolean"),
        ({"request_id": "r", "count": 1, "colour": "green"}, "field 'colour' has unknown value 'green'"),
    ],
    ids=["list", "string", "number", "null", "missing", "wrong-type", "string-for-int", "bool-for-int", "enum"],
)
def test_invalid_body_dead_letters_at_once(queues, queue, fast_retries, body, error):
    handler = Recorder()
    msg_id = queues.send(QUEUE, body)

    outcome = make_worker(handler).handle(queues.read(QUEUE, vt=60)[0])

    assert outcome == Outcome.DEAD_LETTERED
    assert handler.calls == 0
    assert queued(msg_id) is None
    assert archived(msg_id) is not None

    [letter] = dead_letters_for(msg_id)
    assert letter["reason"] == "invalid_body"
    assert letter["error"].startswith(error)
    assert letter["attempts"] == 1
    assert letter["body"] == body


def test_read_count_past_limit_dead_letters(queues, queue, fast_retries):
    # A worker that died mid-message leaves only a higher read count behind; reading with vt=0
    # twice more reproduces that without killing anything.
    fast_retries.WORKER_MAX_ATTEMPTS = 2
    handler = Recorder()
    msg_id = queues.send(QUEUE, message_body())
    queues.read(QUEUE, vt=0)
    queues.read(QUEUE, vt=0)

    outcome = make_worker(handler).handle(queues.read(QUEUE, vt=60)[0])

    assert outcome == Outcome.DEAD_LETTERED
    assert handler.calls == 0
    assert archived(msg_id) is not None

    [letter] = dead_letters_for(msg_id)
    assert letter["reason"] == "max_attempts_exceeded"
    assert letter["attempts"] == 3
    assert "read 3 times" in letter["error"]


def test_dead_letter_keeps_headers(queues, queue):
    msg_id = queues.send(QUEUE, "not an object", headers={"trace": "t-1"})

    make_worker(Recorder()).run_once()

    assert dead_letters_for(msg_id)[0]["headers"] == {"trace": "t-1"}


# --- logs ------------------------------------------------------------------------------------


def runtime_records(caplog, message: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == RUNTIME_LOGGER and record.getMessage() == message]


def test_retry_log_carries_ids(queues, queue, fast_retries, caplog):
    caplog.set_level(logging.DEBUG, logger=RUNTIME_LOGGER)
    msg_id = queues.send(QUEUE, message_body(request_id="req-log"))

    make_worker(Recorder(fail_with(RuntimeError("boom")))).run_once()

    [record] = runtime_records(caplog, "worker.message_retrying")
    assert record.levelno == logging.WARNING
    assert record.queue == QUEUE
    assert record.msg_id == msg_id
    assert record.request_id == "req-log"
    assert record.attempt == 1
    assert record.delay_s == 10
    assert record.error == "RuntimeError: boom"


def test_dead_letter_log_carries_ids(queues, queue, caplog):
    caplog.set_level(logging.DEBUG, logger=RUNTIME_LOGGER)
    msg_id = queues.send(QUEUE, {"request_id": "req-dead", "count": "x"})

    make_worker(Recorder()).run_once()

    [record] = runtime_records(caplog, "worker.message_dead_lettered")
    assert record.levelno == logging.ERROR
    assert record.queue == QUEUE
    assert record.msg_id == msg_id
    assert record.request_id == "req-dead"
    assert record.reason == "invalid_body"
    assert record.dead_letter_msg_id > 0


def test_verdict_log_carries_ids(queues, queue, caplog):
    caplog.set_level(logging.DEBUG, logger=RUNTIME_LOGGER)
    msg_id = queues.send(QUEUE, message_body(request_id="req-verdict"))

    make_worker(Recorder(lambda delivery: DeadLetter("unknown_request", "gone"))).run_once()

    [record] = runtime_records(caplog, "worker.message_dead_lettered")
    assert record.queue == QUEUE
    assert record.msg_id == msg_id
    assert record.request_id == "req-verdict"
    assert record.reason == "unknown_request"


def test_archive_log_carries_ids(queues, queue, caplog):
    caplog.set_level(logging.DEBUG, logger=RUNTIME_LOGGER)
    msg_id = queues.send(QUEUE, message_body(request_id="req-ok"))

    make_worker(Recorder()).run_once()

    [record] = runtime_records(caplog, "worker.message_archived")
    assert record.queue == QUEUE
    assert record.msg_id == msg_id
    assert record.request_id == "req-ok"


def test_log_without_request_id(queues, queue, caplog):
    # A body that is not an object has no request_id; the record must still name the message.
    caplog.set_level(logging.DEBUG, logger=RUNTIME_LOGGER)
    msg_id = queues.send(QUEUE, [1])

    make_worker(Recorder()).run_once()

    [record] = runtime_records(caplog, "worker.message_dead_lettered")
    assert record.msg_id == msg_id
    assert not hasattr(record, "request_id")


# --- backoff_delay ---------------------------------------------------------------------------


@pytest.mark.parametrize(("attempt", "expected"), [(0, 2), (1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (9, 30)])
def test_backoff_delay_values(settings, attempt, expected):
    settings.WORKER_BACKOFF_BASE_SECONDS = 2
    settings.WORKER_BACKOFF_MAX_SECONDS = 30

    assert backoff_delay(attempt) == expected


@pytest.mark.parametrize("attempt", [1025, 5000])
def test_backoff_delay_huge_attempt(settings, attempt):
    # 2 ** 1024 overflows a float; a large WORKER_MAX_ATTEMPTS must not crash the retry.
    settings.WORKER_BACKOFF_BASE_SECONDS = 1.0  # A float, as env.float reads it: an int base would never overflow.
    settings.WORKER_BACKOFF_MAX_SECONDS = 300

    assert backoff_delay(attempt) == 300


def test_backoff_delay_fractional_base(settings):
    settings.WORKER_BACKOFF_BASE_SECONDS = 0.25
    settings.WORKER_BACKOFF_MAX_SECONDS = 300

    assert backoff_delay(3) == 1.0


# --- batches and stopping --------------------------------------------------------------------


def test_run_once_returns_batch_size(queues, queue):
    for count in range(3):
        queues.send(QUEUE, message_body(count=count))
    worker = make_worker(Recorder(), batch_size=2)

    assert worker.run_once() == 2
    assert worker.run_once() == 1
    assert worker.run_once() == 0


def test_run_once_handles_in_order(queues, queue):
    handler = Recorder()
    for count in range(3):
        queues.send(QUEUE, message_body(count=count))

    make_worker(handler, batch_size=3).run_once()

    assert [delivery.body["count"] for delivery in handler.deliveries] == [0, 1, 2]


def test_batch_size_from_settings(queues, queue, settings):
    settings.WORKER_BATCH_SIZE = 2
    for count in range(3):
        queues.send(QUEUE, message_body(count=count))

    assert make_worker(Recorder()).run_once() == 2


def test_stop_hands_back_rest_of_batch(queues, queue):
    worker = None

    def stop_worker(delivery):
        worker.stop()

    handler = Recorder(stop_worker)
    msg_ids = [queues.send(QUEUE, message_body(count=count)) for count in range(3)]
    worker = make_worker(handler, batch_size=3)

    assert worker.run_once() == 3

    assert handler.calls == 1
    assert archived(msg_ids[0]) is not None
    now = db_now()
    for msg_id in msg_ids[1:]:
        row = queued(msg_id)
        assert row is not None, f"message {msg_id} was lost instead of handed back"
        assert row["vt"] <= now, f"message {msg_id} is still hidden"
        assert row["read_ct"] == 0, f"message {msg_id} lost an attempt without being handled"


def test_handed_back_messages_are_readable(queues, queue):
    worker = None

    def stop_worker(delivery):
        worker.stop()

    for count in range(3):
        queues.send(QUEUE, message_body(count=count))
    worker = make_worker(Recorder(stop_worker), batch_size=3)
    worker.run_once()

    handler = Recorder()
    make_worker(handler, batch_size=3).run_once()

    assert [delivery.body["count"] for delivery in handler.deliveries] == [1, 2]


# --- the run loop (a real thread, so a committed database) -----------------------------------


LOOP_QUEUE = "test_runtime_loop"


@pytest.fixture
def loop_queue(queues, transactional_db):
    queues.create(LOOP_QUEUE)
    yield LOOP_QUEUE
    queues.drop(LOOP_QUEUE)


@pytest.fixture
def hub():
    hub = NotificationHub()
    yield hub
    hub.stop()


def start_loop(worker: ConsumerWorker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, name="test-consumer", daemon=True)
    thread.start()
    return thread


def stop_loop(worker: ConsumerWorker, thread: threading.Thread) -> None:
    worker.stop()
    thread.join(10)
    assert not thread.is_alive(), "the consumer thread did not stop"


class FlakyIdleWorker(ConsumerWorker):
    """A worker whose first idle-time query fails, as it would when the connection drops while idle."""

    failed = False

    def _idle_timeout(self) -> float:
        if not self.failed:
            self.failed = True
            raise DatabaseError("server closed the connection unexpectedly")
        return super()._idle_timeout()


def test_run_handles_until_stopped(queues, loop_queue, hub, settings):
    settings.WORKER_POLL_INTERVAL_SECONDS = 0.2
    handler = Recorder()
    spec = ConsumerSpec("loop_consumer", LOOP_QUEUE, handler, CONTRACT)
    worker = ConsumerWorker(spec, hub)
    thread = start_loop(worker)

    msg_id = queues.send(LOOP_QUEUE, message_body())
    wait_for(lambda: archived(msg_id, LOOP_QUEUE))
    stop_loop(worker, thread)

    assert handler.calls == 1


def test_run_survives_idle_query_error(queues, loop_queue, hub, settings, caplog):
    settings.WORKER_POLL_INTERVAL_SECONDS = 0.2
    caplog.set_level(logging.INFO, logger=RUNTIME_LOGGER)
    handler = Recorder()
    spec = ConsumerSpec("loop_consumer", LOOP_QUEUE, handler, CONTRACT)
    worker = FlakyIdleWorker(spec, hub)
    thread = start_loop(worker)

    wait_for(lambda: worker.failed)
    msg_id = queues.send(LOOP_QUEUE, message_body())
    wait_for(lambda: archived(msg_id, LOOP_QUEUE))

    assert thread.is_alive()
    assert runtime_records(caplog, "worker.loop_failed")
    stop_loop(worker, thread)


# --- the notification hub --------------------------------------------------------------------


def terminate_listener() -> int:
    """Terminate the hub's LISTEN connection on the test server; return how many were ended."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name LIKE %s AND pid <> pg_backend_pid()",
            ["%-listener"],
        )
        return cursor.fetchone()[0]


def notify(channel: str, payload: str = "") -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [channel, payload])


def test_hub_delivers_notification(hub, transactional_db):
    with hub.watch("test_hub_channel") as watch:
        notify("test_hub_channel")

        assert watch.wait(10)


def test_hub_filters_by_payload(hub, transactional_db):
    with hub.watch("test_hub_channel", "wanted") as filtered, hub.watch("test_hub_barrier") as barrier:
        notify("test_hub_channel", "other")
        # The listener dispatches in order, so once the barrier arrives "other" has been dispatched.
        notify("test_hub_barrier")
        assert barrier.wait(10)

        assert not filtered.wait(0), "a notification with another payload woke the filtered watch"
        notify("test_hub_channel", "wanted")
        assert filtered.wait(10)


def test_hub_wakes_after_reconnect_listening(hub, transactional_db):
    # After a lost connection the hub wakes every waiter so that it rechecks. LISTEN must be back by
    # then, because a notification sent right after the recheck would otherwise be lost again.
    with hub.watch("test_hub_reconnect") as watch:
        assert terminate_listener() >= 1

        assert watch.wait(15), "the hub did not wake its waiters after reconnecting"
        notify("test_hub_reconnect")

        assert watch.wait(10), "a notification right after the wake-up was lost"


# --- the consumer table ----------------------------------------------------------------------


@pytest.mark.parametrize("max_attempts", [0, -1, 1.5, True, "3"])
def test_spec_rejects_bad_max_attempts(max_attempts):
    with pytest.raises(ConsumerRegistrationError) as raised:
        ConsumerSpec("bad_consumer", QUEUE, Recorder(), max_attempts=max_attempts)

    assert f"max_attempts={max_attempts!r}" in str(raised.value)


def test_spec_accepts_one_attempt():
    assert ConsumerSpec("one_shot", QUEUE, Recorder(), max_attempts=1).max_attempts == 1


@pytest.fixture
def registered():
    """Names registered by a test; removed afterwards so the project's table stays as it was."""
    names = []
    yield names
    for name in names:
        unregister(name)


def test_consumer_registers_spec(registered):
    registered.append("test_registered")

    @consumer(QUEUE, name="test_registered", contract=CONTRACT, max_attempts=2)
    def handler(delivery):
        return None

    spec = registered_consumers()["test_registered"]
    assert spec.queue == QUEUE
    assert spec.handler is handler
    assert spec.contract is CONTRACT
    assert spec.max_attempts == 2


def test_consumer_name_defaults_to_queue(registered):
    registered.append("test_default_name")

    consumer("test_default_name")(Recorder())

    assert registered_consumers()["test_default_name"].queue == "test_default_name"


def test_consumer_same_handler_twice(registered):
    # Importing a module twice registers the same function again; that must not fail.
    registered.append("test_twice")
    handler = Recorder()

    consumer(QUEUE, name="test_twice")(handler)
    consumer(QUEUE, name="test_twice")(handler)

    assert registered_consumers()["test_twice"].handler is handler


def test_consumer_name_taken(registered):
    registered.append("test_taken")
    consumer(QUEUE, name="test_taken")(write_marker)

    with pytest.raises(ConsumerRegistrationError) as raised:
        consumer(QUEUE, name="test_taken")(marker_exists)

    assert "'test_taken' is already registered for tests.test_runtime.write_marker" in str(raised.value)


def test_consumer_name_taken_by_object(registered):
    # A handler may be any callable; an object has no __qualname__, so the error names its class.
    registered.append("test_taken_object")
    consumer(QUEUE, name="test_taken_object")(Recorder())

    with pytest.raises(ConsumerRegistrationError) as raised:
        consumer(QUEUE, name="test_taken_object")(Recorder())

    assert "already registered for tests.test_runtime.Recorder" in str(raised.value)


def test_handler_path_of_function():
    assert handler_path(write_marker) == "tests.test_runtime.write_marker"


def test_handler_path_of_object():
    assert handler_path(Recorder()) == "tests.test_runtime.Recorder"


def test_consumer_rejects_bad_queue_name():
    with pytest.raises(QueueNameError):
        consumer("Bad-Queue")


def test_registered_consumers_sorted():
    names = list(registered_consumers())

    assert names == sorted(names)
    assert {"ai_requests", "ai_results"} <= set(names)
