"""Helpers shared by the benchmark commands: a worker child process and percentile lines."""
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import deque

from django.conf import settings
from django.core.management.base import CommandError

from singularity.database import database_url

WORKER_START_TIMEOUT = 60  # seconds
WORKER_STOP_TIMEOUT = 30  # seconds
WORKER_READY_LINE = "Workers running"


def ensure_no_other_worker(grace_seconds: float = 3.0) -> None:
    """Raise ``CommandError`` while a ``run_workers`` process is connected to this database.

    A benchmark measures the one worker it starts, and another worker would take part of its work.
    A worker that is still exiting gets ``grace_seconds`` to disconnect.
    """
    from .commands.run_workers import worker_connected

    deadline = time.monotonic() + grace_seconds
    while worker_connected():
        if time.monotonic() >= deadline:
            raise CommandError(
                "A run_workers process is already connected to this database. Stop it first (Ctrl-C in "
                "runstack, or scripts/setup-all-services.sh --stop): the benchmark starts its own worker "
                "and measures that one only."
            )
        time.sleep(0.1)


def start_worker(*arguments: str, **environment: str) -> subprocess.Popen:
    """Start ``manage.py run_workers ARGUMENTS`` on this database and return once it is ready.

    Keyword arguments become environment variables of the child; its log level is WARNING so that
    per-message log lines do not cost time during a measurement. Raises ``CommandError`` when another
    worker is connected, and with the child's last output lines when it exits before it is ready.
    """
    ensure_no_other_worker()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **environment,
    }
    worker = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "run_workers", *arguments],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ready = threading.Event()
    last_lines: deque[str] = deque(maxlen=10)

    def read_output():
        # Reading to the end also keeps the pipe from filling up and blocking the worker.
        for line in worker.stdout:
            last_lines.append(line.rstrip())
            if WORKER_READY_LINE in line:
                ready.set()

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    while not ready.wait(0.2):
        if worker.poll() is not None:
            reader.join(2)  # the rest of its output
            output = "\n".join(last_lines) or "(no output)"
            raise CommandError(f"run_workers exited with status {worker.returncode} before it started:\n{output}")
        if time.monotonic() >= deadline:
            worker.kill()
            raise CommandError(f"run_workers did not start within {WORKER_START_TIMEOUT} s.")
    return worker


def stop_worker(worker: subprocess.Popen) -> None:
    worker.terminate()
    worker.wait(WORKER_STOP_TIMEOUT)


def percentile_line(label: str, samples: list[float], *, width: int = 32) -> str:
    """Format the count, p50, p95, p99 and maximum of ``samples`` (milliseconds) on one line."""
    ordered = sorted(samples)
    # statistics.quantiles needs two samples; one sample is every percentile at once.
    quantiles = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else ordered * 99
    return (
        f"{label:<{width}} n={len(ordered):<5} p50={quantiles[49]:7.2f} ms  p95={quantiles[94]:7.2f} ms  "
        f"p99={quantiles[98]:7.2f} ms  max={ordered[-1]:7.2f} ms"
    )


def server_version() -> str:
    """Return the PostgreSQL server's version as people write it, for example 18.6."""
    from django.db import connection

    number = connection.cursor().connection.info.server_version  # for example 180006
    return f"{number // 10000}.{number % 10000}"
