"""Run the project's queue consumers in this process until SIGTERM or SIGINT."""
import logging
import os
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections

from singularity.messaging.notifications import get_hub
from singularity.messaging.registry import handler_path, registered_consumers
from singularity.messaging.runtime import WorkerProcess

logger = logging.getLogger(__name__)

WORKER_APPLICATION_NAME = "singularity-worker"  # ``worker_connected`` looks for this in pg_stat_activity.
FORCED_EXIT_STATUS = 1
STOP_TIMEOUT_SECONDS = 30


class Command(BaseCommand):
    help = (
        "Run the queue consumers (one thread each) in this process. SIGTERM or SIGINT lets each "
        "consumer finish the message in hand, then exits with status 0."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--only",
            action="append",
            default=[],
            metavar="NAME",
            help="Run only this consumer; repeat or separate names with commas. See --list.",
        )
        parser.add_argument("--list", action="store_true", help="List the consumers and their queues, then exit.")

    def handle(self, *args, **options):
        consumers = registered_consumers()
        if options["list"]:
            for name, spec in consumers.items():
                self.stdout.write(f"{name}\tqueue={spec.queue}\thandler={handler_path(spec.handler)}")
            return

        wanted = [name.strip() for value in options["only"] for name in value.split(",")]
        if "" in wanted:
            raise CommandError(
                f"--only {', '.join(repr(value) for value in options['only'])} names an empty consumer; "
                f"give consumer names from --list: {', '.join(consumers)}."
            )
        unknown = sorted(set(wanted) - set(consumers))
        if unknown:
            raise CommandError(
                f"Unknown consumer(s) in --only: {', '.join(unknown)}. Known consumers: {', '.join(consumers)}."
            )
        specs = []
        for name, spec in consumers.items():
            if wanted and name not in wanted:
                continue
            reason = spec.disabled_reason() if spec.disabled_reason else None
            if reason:
                logger.info("worker.consumer_disabled", extra={"consumer": name, "reason": reason})
                self.stdout.write(f"Skipping consumer {name}: {reason}.")
                continue
            specs.append(spec)
        if not specs:
            raise CommandError(
                "Every selected consumer is switched off in this process (see the lines above); "
                "turn its pipeline on or pick other consumers with --only."
            )

        # Tag this process's connections so operators (and ``ask``) can see a worker is connected.
        settings.DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = WORKER_APPLICATION_NAME
        connections.close_all()
        try:
            connections["default"].ensure_connection()
        except DatabaseError as exc:
            raise CommandError(
                f"Cannot connect to the database: {' '.join(str(exc).split())} "
                "Check DATABASE_URL, or unset it to use the embedded server."
            ) from exc

        stop_requested = threading.Event()

        def request_stop(signum, frame):
            if stop_requested.is_set():
                # A second signal while a handler hangs: leave now. The message in hand reappears
                # after its visibility timeout, so nothing is lost.
                logger.error("worker.forced_exit", extra={"signal": signal.Signals(signum).name})
                os._exit(FORCED_EXIT_STATUS)
            logger.info("worker.stop_requested", extra={"signal": signal.Signals(signum).name})
            stop_requested.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

        process = WorkerProcess(specs, get_hub())
        process.start()
        names = ", ".join(spec.name for spec in specs)
        logger.info("worker.started", extra={"consumers": names})
        self.stdout.write(f"Workers running: {names}. Stop with Ctrl-C or SIGTERM.")
        self.stdout.flush()
        while not stop_requested.wait(0.5):
            stopped = process.stopped_consumers()
            if stopped:
                # A consumer without its thread would leave its queue unserved while the process
                # looks healthy; exit so the supervisor restarts the whole worker.
                process.stop(timeout=STOP_TIMEOUT_SECONDS)
                raise CommandError(
                    f"Consumer thread(s) {', '.join(stopped)} exited unexpectedly; see the log above. "
                    "Restart run_workers."
                )
        process.stop()
        logger.info("worker.stopped", extra={"consumers": names})
        self.stdout.write("Workers stopped.")


def worker_connected() -> bool:
    """Return whether a ``run_workers`` process is connected to this database."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s)",
            [WORKER_APPLICATION_NAME],
        )
        return cursor.fetchone()[0]
