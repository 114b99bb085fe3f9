"""Send one prompt through the queue path and print the answer with its usage and latency."""
import logging
import math
import time

from django.core.management.base import BaseCommand, CommandError

from singularity.llm.contracts import Complexity, TaskType
from singularity.llm.service import InvalidRequest, ProviderFailure, ResultTimeout, await_responses_result, dispatch_request

from .run_workers import worker_connected


class Command(BaseCommand):
    help = (
        "Send TEXT to ai_requests, wait for its result from ai_results, and print the answer, model, "
        "provider, tokens, cost, latency and request_id. Needs running workers (run_workers or runstack)."
    )

    def add_arguments(self, parser):
        parser.add_argument("text", help="The prompt to send.")
        parser.add_argument("--task-type", default=TaskType.GENERAL, choices=TaskType.values, help="Task type (default: general).")
        parser.add_argument("--complexity", default=Complexity.SIMPLE, choices=Complexity.values, help="Complexity (default: simple).")
        parser.add_argument("--timeout", type=float, default=30.0, help="Seconds to wait for the result (default: 30).")
        parser.add_argument("--agent-id", default="cli", help="Agent id recorded on the request (default: cli).")

    def handle(self, *args, **options):
        if not math.isfinite(options["timeout"]) or options["timeout"] <= 0:
            raise CommandError(f"--timeout {options['timeout']:g} is invalid: give a finite number of seconds > 0.")
        if options["verbosity"] < 2:
            # The answer goes to stdout; per-request INFO lines on stderr would only clutter it.
            logging.getLogger("singularity").setLevel(logging.WARNING)
        if not options["text"].strip():
            raise CommandError("The prompt is empty: pass the text to send, for example: manage.py ask \"hello\".")
        if not worker_connected():
            self.stderr.write(
                f"No worker is connected to the database; waiting up to {options['timeout']:g} s in case one starts."
            )

        started = time.perf_counter()
        try:
            request_id = dispatch_request(
                [{"role": "user", "content": options["text"]}],
                task_type=options["task_type"],
                complexity=options["complexity"],
                agent_id=options["agent_id"],
            )
            result = await_responses_result(request_id, timeout=options["timeout"])
        except InvalidRequest as exc:
            raise CommandError(str(exc)) from exc
        except ResultTimeout as exc:
            if worker_connected():
                hint = "A worker is connected but has not answered; see its log, or ask again with a longer --timeout."
            else:
                hint = "No worker is connected: start one with 'manage.py run_workers' or 'manage.py runstack'."
            raise CommandError(f"{exc} {hint}") from exc
        except ProviderFailure as exc:
            raise CommandError(f"{exc} (request_id {exc.result.request_id})") from exc
        total_ms = (time.perf_counter() - started) * 1000

        cost = "unknown" if result.cost_usd is None else f"${result.cost_usd:.6f}"
        self.stdout.write(result.response)
        self.stdout.write("")
        self.stdout.write(f"model:      {result.model} ({result.provider})")
        self.stdout.write(
            f"tokens:     {result.input_tokens} in, {result.output_tokens} out, {result.total_tokens} total"
        )
        self.stdout.write(f"cost:       {cost}")
        self.stdout.write(f"latency:    {total_ms:.1f} ms end to end, {result.latency_ms or 0:.1f} ms in the provider")
        self.stdout.write(f"request_id: {result.request_id}")
