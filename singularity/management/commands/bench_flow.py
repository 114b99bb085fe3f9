"""Benchmark quantum_flow's own cost with a four-step flow whose steps do nothing."""
import logging
import os
import time
import uuid

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from singularity.management.benchmarking import server_version, percentile_line, start_worker, stop_worker

BENCHMARK_MODULE = "singularity.quantum_flow.benchmark"
RUN_TIMEOUT = 30  # seconds for one run before the benchmark gives up


class Command(BaseCommand):
    help = (
        "Run a four-step no-op flow N times, one run at a time, and print latency percentiles per run "
        "and per step: through the flow's queue with one worker process, and eagerly in this process "
        "(as nexus runs its nexus_llm flow). Deletes its runs afterwards unless --keep-rows."
    )

    def add_arguments(self, parser):
        parser.add_argument("--runs", type=int, default=300, help="Runs per measurement (default 300).")
        parser.add_argument("--warmup", type=int, default=20, help="Untimed runs before each measurement (default 20).")
        parser.add_argument("--keep-rows", action="store_true", help="Keep the benchmark's runs, steps and attempts.")

    def handle(self, *args, **options):
        if options["runs"] < 1:
            raise CommandError(f"--runs {options['runs']} is invalid: give a number >= 1.")
        if options["warmup"] < 0:
            raise CommandError(f"--warmup {options['warmup']} is invalid: give a number >= 0.")

        from singularity.models import Queue
        from singularity.quantum_flow.benchmark import NoOpFlow

        # Per-run INFO lines would cost more than the engine being measured.
        logging.getLogger("singularity").setLevel(logging.WARNING)
        Queue.objects.create(NoOpFlow.queue_name())
        worker = start_worker("--only", NoOpFlow.queue_name(), QUANTUM_FLOW_MODULES=BENCHMARK_MODULE)
        try:
            for _ in range(options["warmup"]):
                self._queued_run(NoOpFlow)
            queued = [self._queued_run(NoOpFlow) for _ in range(options["runs"])]
        finally:
            stop_worker(worker)
        for _ in range(options["warmup"]):
            self._eager_run(NoOpFlow)
        eager = [self._eager_run(NoOpFlow) for _ in range(options["runs"])]
        if not options["keep_rows"]:
            self._delete_runs(NoOpFlow)

        database = settings.DATABASES["default"]
        self.stdout.write(
            f"PostgreSQL {server_version()}, database {database['NAME']} on "
            f"{database['HOST'] or 'localhost'}, {os.cpu_count()} CPUs, flow {NoOpFlow.slug} "
            f"({len(NoOpFlow.steps)} steps in a row)"
        )
        steps = len(NoOpFlow.steps)
        self._report("queued run, one worker process", queued)
        self._report("queued, per step", [sample / steps for sample in queued])
        self._report("eager run, in this process", eager)
        self._report("eager, per step", [sample / steps for sample in eager])

    def _queued_run(self, flow) -> float:
        from singularity.messaging.notifications import get_hub
        from singularity.quantum_flow import start_flow
        from singularity.quantum_flow.benchmark import DONE_CHANNEL

        run_id = str(uuid.uuid4())
        with get_hub().watch(DONE_CHANNEL, run_id) as watch:
            started = time.perf_counter()
            start_flow(flow, {}, run_id=run_id)
            if not watch.wait(RUN_TIMEOUT):
                raise CommandError(f"Run {run_id} did not finish within {RUN_TIMEOUT} s; see the worker's log.")
            return (time.perf_counter() - started) * 1000

    def _eager_run(self, flow) -> float:
        from singularity.quantum_flow import start_flow

        started = time.perf_counter()
        with transaction.atomic():
            start_flow(flow, {}, eager=True)
        return (time.perf_counter() - started) * 1000

    def _delete_runs(self, flow) -> None:
        from singularity.quantum_flow.models import FlowRun

        FlowRun.objects.filter(flow=flow.slug).delete()

    def _report(self, label: str, samples: list[float]) -> None:
        self.stdout.write(percentile_line(label, samples, width=34))
