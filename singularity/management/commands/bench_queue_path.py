"""Benchmark the LLM queue path with the local provider, next to a raw pgmq round trip."""
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from singularity.database import database_url
from singularity.llm.service import await_responses_result, dispatch_request

BENCH_QUEUE = "bench_raw_round_trip"
BENCH_AGENT = "bench_queue_path"
WORKER_START_TIMEOUT = 60  # seconds


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
        parser.add_argument("--raw", type=int, default=500, help="Raw pgmq send + read round trips (default 500).")
        parser.add_argument("--warmup", type=int, default=20, help="Untimed requests before measuring (default 20).")
        parser.add_argument(
            "--external-worker", action="store_true", help="Use an already running run_workers instead of starting one."
        )
        parser.add_argument("--keep-rows", action="store_true", help="Keep the benchmark's LlmRequest and JobResult rows.")

    def handle(self, *args, **options):
        for name in ("requests", "throughput_requests", "concurrency", "raw"):
            if options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} {options[name]} is invalid: give a number >= 1.")

        worker = None if options["external_worker"] else self._start_worker()
        try:
            raw = self._raw_round_trips(options["raw"])
            for _ in range(options["warmup"]):
                self._one_request()
            sequential = [self._one_request() for _ in range(options["requests"])]
            throughput, concurrent = self._throughput(options["throughput_requests"], options["concurrency"])
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(30)
            if not options["keep_rows"]:
                self._delete_rows()

        self.stdout.write(f"PostgreSQL {connection.cursor().connection.info.server_version}, "
                          f"database {settings.DATABASES['default']['NAME']} on {settings.DATABASES['default']['HOST']}, "
                          f"{os.cpu_count()} CPUs, provider local, one worker process")
        self._report("raw pgmq send + read", raw)
        self._report("end to end, one at a time", sequential)
        self._report(f"end to end, {options['concurrency']} in flight", concurrent)
        self.stdout.write(f"throughput: {throughput:.0f} requests/s ({options['throughput_requests']} requests, "
                          f"{options['concurrency']} in flight)")

    def _start_worker(self) -> subprocess.Popen:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(settings.DATABASES["default"]),
            "LLM_PROVIDER": "local",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        worker = subprocess.Popen(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "run_workers"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()

        def read_output():
            for line in worker.stdout:
                if "Workers running" in line:
                    ready.set()

        threading.Thread(target=read_output, daemon=True).start()
        if not ready.wait(WORKER_START_TIMEOUT):
            worker.kill()
            raise CommandError(f"run_workers did not start within {WORKER_START_TIMEOUT} s.")
        return worker

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
        def timed_request(_):
            try:
                return self._one_request()
            finally:
                connection.close()

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            samples = list(pool.map(timed_request, range(count)))
        elapsed = time.perf_counter() - started
        return count / elapsed, samples

    def _delete_rows(self) -> None:
        from singularity.models import LlmRequest

        LlmRequest.objects.filter(agent_id=BENCH_AGENT).delete()

    def _report(self, label: str, samples: list[float]) -> None:
        ordered = sorted(samples)
        quantiles = statistics.quantiles(ordered, n=100, method="inclusive")
        self.stdout.write(
            f"{label:<32} n={len(ordered):<5} p50={quantiles[49]:7.2f} ms  p95={quantiles[94]:7.2f} ms  "
            f"p99={quantiles[98]:7.2f} ms  max={ordered[-1]:7.2f} ms"
        )
