"""One LISTEN connection per process that wakes the threads waiting for PostgreSQL notifications.

Consumers wait for pgmq's insert notifications and ``await_responses_result`` waits for the
notification sent when a result is stored. A waiter opens a ``Watch`` before it checks the
database, so a notification that arrives between the check and the wait is never missed.
"""
import atexit
import logging
import threading
import time
from collections import defaultdict

import psycopg
from django.db import connections
from psycopg import sql

logger = logging.getLogger(__name__)

LOOP_TIMEOUT_SECONDS = 0.2  # How long the listener blocks before it looks for new channels.
RECONNECT_DELAY_SECONDS = 1.0  # First wait after a lost connection; it doubles up to the maximum.
MAX_RECONNECT_DELAY_SECONDS = 30.0


class Watch:
    """A waiter's view of one channel, optionally narrowed to one payload."""

    def __init__(self, hub: "NotificationHub", channel: str, payload: str | None):
        self.hub = hub
        self.channel = channel
        self.payload = payload
        self._event = threading.Event()

    def wait(self, timeout: float | None) -> bool:
        """Block until a matching notification (or ``wake``) arrives; return whether one did."""
        woken = self._event.wait(timeout)
        self._event.clear()
        return woken

    def wake(self) -> None:
        self._event.set()

    def close(self) -> None:
        self.hub._remove(self)

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class NotificationHub:
    """Listen on a set of channels with a dedicated connection and dispatch to ``Watch`` objects."""

    def __init__(self, using: str = "default"):
        self.using = using
        self._lock = threading.Lock()
        self._watches: dict[tuple[str, str | None], set[Watch]] = defaultdict(set)
        self._listening: set[str] = set()
        self._pending: set[str] = set()
        self._listened = threading.Condition(self._lock)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._reconnecting = False  # Set after a lost connection until LISTEN is back on a new one.

    def watch(self, channel: str, payload: str | None = None) -> Watch:
        """Return a ``Watch`` for ``channel`` once the channel is being listened to."""
        watch = Watch(self, channel, payload)
        with self._lock:
            self._watches[(channel, payload)].add(watch)
            if channel not in self._listening:
                self._pending.add(channel)
        self._ensure_started()
        self._wait_listening(channel)
        return watch

    def stop(self) -> None:
        """Close the listening connection; a later ``watch`` starts it again."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self._pending |= self._listening
            self._listening.clear()

    # --- listener thread --------------------------------------------------------------------

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopped.clear()
            self._thread = threading.Thread(target=self._run, name="notification-hub", daemon=True)
            self._thread.start()

    def _wait_listening(self, channel: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._listened:
            while channel not in self._listening:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    # The waiter still works: it falls back to its own poll interval.
                    logger.warning("notifications.listen_timed_out", extra={"channel": channel})
                    return
                self._listened.wait(remaining)

    def _run(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            try:
                self._listen_forever()
            except psycopg.Error as exc:
                if self._stopped.is_set():
                    break
                failures = 0 if self._listening else failures
                failures += 1
                # One WARNING per outage; the retries of a server that stays down log at DEBUG.
                level = logging.WARNING if failures == 1 else logging.DEBUG
                logger.log(level, "notifications.connection_lost", extra={"error": str(exc), "failures": failures})
                self._reconnecting = True
                with self._lock:
                    self._pending |= self._listening
                    self._listening.clear()
                self._stopped.wait(min(RECONNECT_DELAY_SECONDS * 2 ** (failures - 1), MAX_RECONNECT_DELAY_SECONDS))
            finally:
                self._close()

    def _listen_forever(self) -> None:
        self._conn = psycopg.connect(**self._connection_params(), autocommit=True)
        self._listen_pending()
        if self._reconnecting:
            # Notifications sent while disconnected are lost, so every waiter rechecks. Waking them only
            # now that LISTEN is back means no notification after the recheck can be missed.
            self._reconnecting = False
            logger.info("notifications.reconnected")
            self._wake_everyone()
        while not self._stopped.is_set():
            self._listen_pending()
            for notify in self._conn.notifies(timeout=LOOP_TIMEOUT_SECONDS):
                self._dispatch(notify.channel, notify.payload)

    def _listen_pending(self) -> None:
        with self._lock:
            pending = set(self._pending)
        if not pending:
            return
        for channel in pending:
            self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        with self._listened:
            self._listening |= pending
            self._pending -= pending
            self._listened.notify_all()

    def _dispatch(self, channel: str, payload: str) -> None:
        with self._lock:
            targets = list(self._watches.get((channel, None), ())) + list(self._watches.get((channel, payload), ()))
        for watch in targets:
            watch.wake()

    def _wake_everyone(self) -> None:
        with self._lock:
            targets = [watch for watches in self._watches.values() for watch in watches]
        for watch in targets:
            watch.wake()

    def _remove(self, watch: Watch) -> None:
        with self._lock:
            watches = self._watches.get((watch.channel, watch.payload))
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[(watch.channel, watch.payload)]

    def _connection_params(self) -> dict:
        params = connections[self.using].get_connection_params()
        for key in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(key, None)
        params["application_name"] = f"{params.get('application_name') or 'singularity'}-listener"
        return params

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None


_hub: NotificationHub | None = None
_hub_lock = threading.Lock()


def get_hub() -> NotificationHub:
    """Return this process's hub, creating it on first use."""
    global _hub
    with _hub_lock:
        if _hub is None:
            _hub = NotificationHub()
            # Registered after the embedded server's own exit hook, so it runs first and the
            # listener closes before the server stops.
            atexit.register(_hub.stop)
        return _hub
