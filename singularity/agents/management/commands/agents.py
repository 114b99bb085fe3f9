"""``manage.py agents``: list the agents, start a run, or show the demo."""
import json

from django.core.management.base import BaseCommand, CommandError

from singularity.agents.base import AgentError, registered_agents
from singularity.agents.models import AgentRun, RunStatus
from singularity.agents.runner import start_run
from singularity.management.commands.run_workers import worker_connected
from singularity.agents.completion import wait_until_finished

from ._demo import run_demo


class Command(BaseCommand):
    help = "List the registered agents, start a run of one, or run the documentation demo."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("list", help="List the registered agents with their descriptions.")

        run = actions.add_parser("run", help="Start a run of an agent; workers (manage.py run_workers) advance it.")
        run.add_argument("name", help="The agent's name, as listed by 'agents list'.")
        run.add_argument("--input", default="{}", help="The run's input as a JSON object, for example '{\"path\": \"app.py\"}'.")
        run.add_argument("--wait", action="store_true", help="Wait until the run finishes and print its outcome.")
        run.add_argument("--timeout", type=float, default=3600.0, help="Seconds --wait waits (default 3600).")

        demo = actions.add_parser("demo", help="Run the documentation agent on a sample file and wait for its approval.")
        demo.add_argument("--base-url", default="http://127.0.0.1:8000", help="Where the web server listens (default http://127.0.0.1:8000).")
        demo.add_argument("--timeout", type=float, default=3600.0, help="Seconds to wait for the approval (default 3600).")

    def handle(self, *args, action, **options):
        handlers = {"list": self._list, "run": self._run, "demo": self._demo}
        return handlers[action](**options)

    def _list(self, **options):
        for name, agent in registered_agents().items():
            self.stdout.write(f"{name:16} {agent.description}")

    def _run(self, *, name, input, wait, timeout, **options):
        try:
            data = json.loads(input)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--input is not valid JSON ({exc.msg} at position {exc.pos}); give a JSON object.") from exc
        try:
            run = start_run(name, data)
        except AgentError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Started run {run.run_id} of {name}.")
        if not worker_connected():
            self.stderr.write(
                "No worker is connected, so the run waits in the queue: start manage.py run_workers or manage.py runstack."
            )
        if wait:
            self._report(self._wait(run, timeout))

    def _demo(self, *, base_url, timeout, **options):
        run_demo(self, base_url=base_url, timeout=timeout)

    def _wait(self, run: AgentRun, timeout: float) -> AgentRun:
        finished = wait_until_finished(run.run_id, timeout)
        if finished is None:
            raise CommandError(
                f"Run {run.run_id} did not finish within {timeout:g} s; it goes on in the workers. Check that a "
                "manage.py run_workers process runs the flow_agent_run consumer (run_workers --list; "
                "PGFLOW_AGENT_RUN_ENABLED), and the pending approvals on /observer/."
            )
        return finished

    def _report(self, run: AgentRun) -> None:
        self.stdout.write(f"Run {run.run_id}: {run.status}. {run.outcome}")
        if run.changes:
            self.stdout.write(f"Changed: {json.dumps(run.changes)}")
        if run.model_output:
            self.stdout.write(f"Model output:\n{run.model_output}")
        if run.status not in (RunStatus.SUCCEEDED, RunStatus.NOTHING_TO_DO):
            # A non-zero exit lets scripts tell a rejected, expired or failed run from an applied one.
            raise CommandError(f"Run {run.run_id} ended {run.status}, not succeeded.")
