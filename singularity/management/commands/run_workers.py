"""Run the project's queue consumers in this process until SIGTERM or SIGINT."""
import logging
import os
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from singularity.messaging.notifications import get_hub
from singularity.messaging.registry import handler_path, registered_consumers
from singularity.messaging.runtime import WorkerProcess

logger = logging.getLogger(__name__)

WORKER_APPLICATION_NAME = "singularity-worker"  # ``ask`` looks for this in pg_stat_activity.
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

        wanted = [name.strip() for value in options["only"] for name in value.split(",") if name.strip()]
        unknown = sorted(set(wanted) - set(consumers))
        if unknown:
            raise CommandError(
                f"Unknown consumer(s): {', '.join(unknown)}. Known consumers: {', '.join(consumers)}."
            )
        specs = [spec for name, spec in consumers.items() if not wanted or name in wanted]

        # Tag this process's connections so operators (and ``ask``) can see a worker is connected.
        settings.DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = WORKER_APPLICATION_NAME
        connections.close_all()

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
