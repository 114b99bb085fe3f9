"""The consumer runtime: read with a visibility timeout, handle, archive; retry or dead-letter.

Lifecycle of one message: a read hides it for the visibility timeout. Its body is checked against
the consumer's contract, then the handler runs in a transaction that also archives the message.
A handler error hides the message again for an exponential backoff. When the attempts run out, or
at once for an invalid body, the message moves to the ``dead_letters`` queue with the reason and
its original body. A worker killed mid-message loses nothing: the message reappears after its
visibility timeout and its read count keeps counting attempts.
"""
import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction

from .contracts import InvalidMessage
from .notifications import NotificationHub
from .pgmq import Message
from .queues import DEAD_LETTERS, insert_channel
from .registry import ConsumerSpec

logger = logging.getLogger(__name__)

MAX_LOOP_PAUSE_SECONDS = 60.0  # Maximum pause between retries while the database is unreachable.


class RetryLater(Exception):
    """Raised by a handler to try the message again, after ``delay`` seconds or the usual backoff."""

    def __init__(self, reason: str, delay: float | None = None):
        if delay is not None and not _is_valid_delay(delay):
            # Raised from the handler, this ValueError is retried with the usual backoff and logged.
            raise ValueError(
                f"RetryLater delay={delay!r} is invalid: give a finite number of seconds >= 0, "
                "or None for the usual backoff."
            )
        super().__init__(reason)
        self.delay = delay


def _is_valid_delay(delay: object) -> bool:
    return isinstance(delay, (int, float)) and not isinstance(delay, bool) and math.isfinite(delay) and delay >= 0


@dataclass(frozen=True)
class DeadLetter:
    """Returned by a handler to dead-letter the message in the same transaction as its other writes.

    A handler uses it when it has already reported a bad message (with an error result, say) and
    the original must still be kept for an operator.
    """

    reason: str
    error: str


@dataclass(frozen=True)
class Hidden:
    """Returned by a handler that owns its transaction and hid messages itself (``set_vt``).

    ``seconds`` is when the earliest of them becomes visible again, so the worker wakes for it then
    rather than after its poll interval.
    """

    seconds: float


@dataclass(frozen=True)
class Delivery:
    """One attempt at handling a message, as passed to the handler."""

    message: Message
    body: Any
    attempt: int
    max_attempts: int

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    @property
    def log_ids(self) -> dict:
        ids = {"queue": self.message.queue, "msg_id": self.message.msg_id}
        if isinstance(self.body, dict):
            for key in ("request_id", "agent_id"):
                if key in self.body:
                    ids[key] = self.body[key]
        return ids


def backoff_delay(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt + 1``: base * 2^(attempt - 1), capped."""
    # A float overflows at 2 ** 1024. Capping the exponent at 1000 changes no real delay, because
    # any base above cap / 2 ** 1000 already reaches the cap.
    exponent = min(max(attempt - 1, 0), 1000)
    delay = settings.WORKER_BACKOFF_BASE_SECONDS * 2.0**exponent
    return min(delay, settings.WORKER_BACKOFF_MAX_SECONDS)


def dead_letter_body(message: Message, *, reason: str, error: str | None, attempts: int) -> dict:
    """Build the ``dead_letters`` body that keeps the original message and why it was given up."""
    return {
        "queue": message.queue,
        "msg_id": message.msg_id,
        "reason": reason,
        "error": error,
        "attempts": attempts,
        "body": message.body,
        "headers": message.headers,
        "enqueued_at": message.enqueued_at.isoformat(),
        "dead_lettered_at": datetime.now(timezone.utc).isoformat(),
    }


class Outcome:
    """The outcome of handling one message, returned by ``ConsumerWorker.handle``."""

    ARCHIVED = "archived"
    RETRYING = "retrying"
    DEAD_LETTERED = "dead_lettered"


class ConsumerWorker:
    """Run one consumer: wait for messages, handle them, and stop when asked."""

    def __init__(self, spec: ConsumerSpec, hub: NotificationHub, *, batch_size: int | None = None):
        from singularity.models import Queue  # Imported late: this module loads before the app registry.

        self.spec = spec
        self.hub = hub
        self.queues = Queue.objects
        self.max_attempts = spec.max_attempts or settings.WORKER_MAX_ATTEMPTS
        self.batch_size = batch_size or settings.WORKER_BATCH_SIZE
        self.visibility_timeout = settings.WORKER_VISIBILITY_TIMEOUT_SECONDS
        self.poll_interval = settings.WORKER_POLL_INTERVAL_SECONDS
        self._stopping = threading.Event()
        self._watch = None
        self._next_retry_at = float("inf")  # monotonic time of the earliest retry this worker scheduled

    @property
    def queue(self) -> str:
        return self.spec.queue

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Ask the loop to exit after the message in hand."""
        self._stopping.set()
        if self._watch is not None:
            self._watch.wake()

    def run(self) -> None:
        """Loop until ``stop``: handle what is visible, then wait for a notification or the poll interval."""
        logger.info("worker.consumer_started", extra={"consumer": self.spec.name, "queue": self.queue})
        self._watch = self.hub.watch(insert_channel(self.queue))
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    handled = self.run_once()
                    if handled >= self.batch_size:
                        continue  # A full batch: more may be waiting.
                    # A short batch emptied the visible queue, so wait instead of reading again: a
                    # notification during the batch ends the wait at once. Only after an empty read is
                    # the database queried for the next hidden message's return (inside the try).
                    idle_timeout = self._retry_timeout() if handled else self._idle_timeout()
                except Exception as exc:
                    # A lost database connection must not end the thread: log, reconnect, go on. The
                    # first failure of an outage logs its traceback, later ones one line each, and
                    # the pause doubles up to a minute so a server that stays down is not hammered.
                    failures += 1
                    ids = {"consumer": self.spec.name, "queue": self.queue, "failures": failures}
                    if failures == 1:
                        logger.exception("worker.loop_failed", extra=ids)
                    else:
                        logger.error("worker.loop_failed", extra={**ids, "error": f"{type(exc).__name__}: {exc}"})
                    close_old_connections()
                    connection.close()
                    self._stopping.wait(min(self.poll_interval * 2 ** min(failures - 1, 10), MAX_LOOP_PAUSE_SECONDS))
                    continue
                failures = 0
                self._watch.wait(idle_timeout)
        finally:
            self._watch.close()
            connection.close()
            logger.info("worker.consumer_stopped", extra={"consumer": self.spec.name, "queue": self.queue})

    def run_once(self) -> int:
        """Read one batch and handle each message; return how many were read."""
        messages = self.queues.read(self.queue, vt=self.visibility_timeout, qty=self.batch_size)
        for index, message in enumerate(messages):
            if self._stopping.is_set():
                # Hand the unstarted rest back at once instead of after the visibility timeout, with
                # the read not counted as an attempt.
                self.queues.release(self.queue, [pending.msg_id for pending in messages[index:]])
                break
            self.handle(message)
        return len(messages)

    def handle(self, message: Message) -> str:
        """Handle one message that has been read; return an ``Outcome`` value."""
        ids = {"consumer": self.spec.name, "queue": message.queue, "msg_id": message.msg_id}
        if isinstance(message.body, dict) and "request_id" in message.body:
            ids["request_id"] = message.body["request_id"]

        if message.read_ct > self.max_attempts:
            # Only a worker that died mid-message leaves a read count past the limit.
            return self._dead_letter(
                message, reason="max_attempts_exceeded", error=f"read {message.read_ct} times", ids=ids
            )
        try:
            body = self.spec.contract.validate(message.body) if self.spec.contract else message.body
        except InvalidMessage as exc:
            return self._dead_letter(message, reason="invalid_body", error=str(exc), ids=ids)

        delivery = Delivery(message, body, message.read_ct, self.max_attempts)
        started = time.perf_counter()
        try:
            if self.spec.owns_transaction:
                verdict = self.spec.handler(delivery)
                if isinstance(verdict, DeadLetter):
                    return self._dead_letter(message, reason=verdict.reason, error=verdict.error, ids=ids)
                if isinstance(verdict, Hidden):
                    self._next_retry_at = min(self._next_retry_at, time.monotonic() + max(0.0, verdict.seconds))
                    return Outcome.RETRYING
            else:
                with transaction.atomic():
                    verdict = self.spec.handler(delivery)
                    if isinstance(verdict, DeadLetter):
                        self._send_dead_letter(message, verdict.reason, verdict.error)
                    self.queues.archive(message.queue, message.msg_id)
        except InvalidMessage as exc:
            return self._dead_letter(message, reason="invalid_body", error=str(exc), ids=ids)
        except RetryLater as exc:
            return self._retry(message, str(exc), exc.delay, ids)
        except Exception as exc:
            logger.debug("worker.handler_traceback", exc_info=True, extra=ids)
            return self._retry(message, f"{type(exc).__name__}: {exc}", None, ids)
        if isinstance(verdict, DeadLetter):
            logger.error(
                "worker.message_dead_lettered", extra={**ids, "reason": verdict.reason, "error": verdict.error}
            )
            return Outcome.DEAD_LETTERED
        logger.debug(
            "worker.message_archived",
            extra={**ids, "duration_ms": round((time.perf_counter() - started) * 1000, 2)},
        )
        return Outcome.ARCHIVED

    def _retry(self, message: Message, error: str, delay: float | None, ids: dict) -> str:
        if message.read_ct >= self.max_attempts:
            return self._dead_letter(message, reason="max_attempts_exceeded", error=error, ids=ids)
        delay = backoff_delay(message.read_ct) if delay is None else delay
        self.queues.set_vt(message.queue, message.msg_id, delay)
        self._next_retry_at = min(self._next_retry_at, time.monotonic() + delay)
        logger.warning(
            "worker.message_retrying",
            extra={**ids, "attempt": message.read_ct, "max_attempts": self.max_attempts, "delay_s": delay, "error": error},
        )
        return Outcome.RETRYING

    def _dead_letter(self, message: Message, *, reason: str, error: str, ids: dict) -> str:
        with transaction.atomic():
            dead_msg_id = self._send_dead_letter(message, reason, error)
            self.queues.archive(message.queue, message.msg_id)
        logger.error(
            "worker.message_dead_lettered",
            extra={**ids, "reason": reason, "error": error, "dead_letter_msg_id": dead_msg_id},
        )
        return Outcome.DEAD_LETTERED

    def _send_dead_letter(self, message: Message, reason: str, error: str) -> int:
        body = dead_letter_body(message, reason=reason, error=error, attempts=message.read_ct)
        return self.queues.send(DEAD_LETTERS, body)

    def _retry_timeout(self) -> float:
        """Seconds to wait after a short batch: the poll interval, or less when a retry is due sooner."""
        now = time.monotonic()
        if self._next_retry_at <= now:
            self._next_retry_at = float("inf")
            return 0.0
        return min(self.poll_interval, self._next_retry_at - now)

    def _idle_timeout(self) -> float:
        """Seconds to sleep: the poll interval, or less when a hidden message reappears sooner."""
        next_visible = self.queues.seconds_until_next_visible(self.queue)
        if next_visible is None:
            return self.poll_interval
        return max(0.0, min(self.poll_interval, next_visible))


class WorkerProcess:
    """Run several consumers in threads of this process and stop them together."""

    def __init__(self, specs: list[ConsumerSpec], hub: NotificationHub, *, threads_per_consumer: int | None = None):
        count = threads_per_consumer or settings.WORKER_THREADS_PER_CONSUMER
        # Several threads on one queue read disjoint batches (pgmq reads with SKIP LOCKED) and
        # overlap their database round trips.
        self.workers = [ConsumerWorker(spec, hub) for spec in specs for _ in range(count)]
        self.hub = hub
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for number, worker in enumerate(self.workers):
            thread = threading.Thread(target=worker.run, name=f"consumer-{worker.spec.name}-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float | None = None) -> None:
        """Let each consumer finish its message in hand, then wait for the threads."""
        for worker in self.workers:
            worker.stop()
        for thread in self._threads:
            thread.join(timeout)
        self.hub.stop()

    def stopped_consumers(self) -> list[str]:
        """Return the names of consumers whose thread has ended although no stop was requested."""
        return [
            worker.spec.name
            for worker, thread in zip(self.workers, self._threads)
            if not thread.is_alive() and not worker.stopping
        ]
