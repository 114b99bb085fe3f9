"""In-process snapshots of the routing and price tables, reloaded after a short time to live.

Both tables are tiny and read for every request, so each worker reads them once per
``NEXUS_TABLE_CACHE_SECONDS`` instead of once per request. Edits made in the admin reach running
workers within that time; saves in the same process take effect at once.
"""
import threading
import time
from typing import Callable

from django.conf import settings


class TableSnapshot:
    """Hold the result of ``load()`` and reload it when it is older than the time to live."""

    def __init__(self, load: Callable[[], dict]):
        self._load = load
        self._lock = threading.Lock()
        self._value: dict | None = None
        self._loaded_at = 0.0

    def get(self) -> dict:
        ttl = settings.NEXUS_TABLE_CACHE_SECONDS
        with self._lock:
            if self._value is None or ttl <= 0 or time.monotonic() - self._loaded_at >= ttl:
                self._value = self._load()
                self._loaded_at = time.monotonic()
            return self._value

    def invalidate(self, **kwargs) -> None:
        with self._lock:
            self._value = None
