"""Benchmark the LLM queue path with the local provider, next to a raw pgmq round trip."""
import logging
import os
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from singularity.management.benchmarking import server_version, percentile_line, start_worker, stop_worker
from singularity.llm.service import await_responses_result, dispatch_request

BENCH_QUEUE = "bench_raw_round_trip"
BENCH_AGENT = "bench_queue_path"


class Command(BaseCommand):
    help = (
        "Send requests through dispatch_request -> ai_requests -> nexus (local provider) -> ai_results -> "
        "await_responses_result and print latency percentiles and throughput, next to the latency of a "
        "raw pgmq send + read on the same database. Starts one worker process unless --external-worker."
    )

    def add_arguments(self, parser):
        parser.add_argument("--requests", type=int, default=300, help="Sequential requests for the latency run (default 300).")
        parser.add_argument("--throughput-requests", type=int, default=2000, help="Requests for the throughput run (default 2000).")
        parser.add_argument("--concurrency", type=int, default=32, help="Requests in flight during the throughput run (default 32).")
        parser.add_argument(
            "--backlog", type=int, default=3000, help="Requests queued before a fresh worker drains them (default 3000)."
        )
        parser.add_argument("--raw", type=int, default=500, help="Raw pgmq send + read round trips (default 500).")
        parser.add_argument("--warmup", type=int, default=20, help="Untimed requests before measuring (default 20).")
        parser.add_argument(
            "--external-worker", action="store_true", help="Use an already running run_workers instead of starting one."
        )
        parser.add_argument("--keep-rows", action="store_true", help="Keep the benchmark's LlmRequest and JobResult rows.")

    def handle(self, *args, **options):
        for name in ("requests", "throughput_requests", "concurrency", "raw", "backlog"):
            if options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} {options[name]} is invalid: give a number >= 1.")

        # Per-request INFO lines would cost more than the path being measured.
        logging.getLogger("singularity").setLevel(logging.WARNING)
        worker = None if options["external_worker"] else start_worker(LLM_PROVIDER="local")
        drain = None
        try:
            raw = self._raw_round_trips(options["raw"])
            for _ in range(options["warmup"]):
                self._one_request()
            sequential = [self._one_request() for _ in range(options["requests"])]
            throughput, concurrent = self._throughput(options["throughput_requests"], options["concurrency"])
            if worker is not None:
                stop_worker(worker)
                worker = None
                drain = self._drain(options["backlog"])
        finally:
            if worker is not None:
                stop_worker(worker)
            if not options["keep_rows"]:
                self._delete_rows()

        database = settings.DATABASES["default"]
        self.stdout.write(
            f"PostgreSQL {server_version()}, database {database['NAME']} on "
            f"{database['HOST'] or 'localhost'}, {os.cpu_count()} CPUs, provider local, one worker process "
            f"with {settings.WORKER_THREADS_PER_CONSUMER} thread(s) per consumer"
        )
        self._report("raw pgmq send + read", raw)
        self._report("end to end, one at a time", sequential)
        self._report(f"end to end, {options['concurrency']} in flight", concurrent)
        self.stdout.write(
            f"closed-loop throughput: {throughput:.0f} requests/s ({options['throughput_requests']} requests, "
            f"{options['concurrency']} in flight; this process and the worker share the CPUs)"
        )
        if drain is not None:
            dispatched_per_second, drained_per_second = drain
            self.stdout.write(
                f"backlog: {options['backlog']} requests dispatched at {dispatched_per_second:.0f}/s, then drained by a "
                f"fresh worker at {drained_per_second:.0f} requests/s"
            )

    def _drain(self, count: int) -> tuple[float, float]:
        """Queue ``count`` requests with no worker running, then time one worker answering all of them."""
        started = time.perf_counter()
        request_ids = [
            dispatch_request("benchmark", task_type="general", complexity="simple", agent_id=BENCH_AGENT)
            for _ in range(count)
        ]
        dispatched_per_second = count / (time.perf_counter() - started)
        worker = start_worker(LLM_PROVIDER="local")
        try:
            ready_at = time.perf_counter()
            for request_id in request_ids:
                await_responses_result(request_id, timeout=300)
            drained_per_second = count / (time.perf_counter() - ready_at)
        finally:
            stop_worker(worker)
        return dispatched_per_second, drained_per_second

    def _raw_round_trips(self, count: int) -> list[float]:
        from singularity.models import Queue

        Queue.objects.create(BENCH_QUEUE, notify=False)
        try:
            samples = []
            for index in range(count):
                started = time.perf_counter()
                Queue.objects.send(BENCH_QUEUE, {"n": index})
                Queue.objects.read(BENCH_QUEUE, vt=30, qty=1)
                samples.append((time.perf_counter() - started) * 1000)
            return samples
        finally:
            Queue.objects.drop(BENCH_QUEUE)

    def _one_request(self) -> float:
        started = time.perf_counter()
        request_id = dispatch_request("benchmark", task_type="general", complexity="simple", agent_id=BENCH_AGENT)
        await_responses_result(request_id, timeout=60)
        return (time.perf_counter() - started) * 1000

    def _throughput(self, count: int, concurrency: int) -> tuple[float, list[float]]:
        """Keep ``concurrency`` requests in flight until ``count`` are answered; return requests/s and latencies."""
        remaining = iter(range(count))
        lock = threading.Lock()
        samples: list[float] = []

        def client():
            # Each thread keeps its own connection for the whole run, as a long-lived agent would.
            try:
                while True:
                    with lock:
                        if next(remaining, None) is None:
                            return
                    latency = self._one_request()
                    with lock:
                        samples.append(latency)
            finally:
                connection.close()

        threads = [threading.Thread(target=client) for _ in range(concurrency)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if len(samples) != count:
            raise CommandError(f"Only {len(samples)} of {count} requests were answered; see the log above.")
        return count / elapsed, samples

    def _delete_rows(self) -> None:
        from singularity.models import LlmRequest

        LlmRequest.objects.filter(agent_id=BENCH_AGENT).delete()

    def _report(self, label: str, samples: list[float]) -> None:
        self.stdout.write(percentile_line(label, samples))
