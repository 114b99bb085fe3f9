"""The ``agents demo`` walk-through: a documentation run on a sample file that stops at an approval."""
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

from singularity.agents.models import AgentRun, RunStatus
from singularity.agents.runner import start_run
from singularity.agents.completion import wait_until_finished

DEMO_FOLDER = "demo"
DEMO_FILE = "greeting.py"
SAMPLE = 'def greet(name):\n    return "Hello, " + name + "!"\n'
PROPOSAL_TIMEOUT_SECONDS = 60.0  # the LLM step; the local provider answers in milliseconds


def run_demo(command, *, base_url: str, timeout: float) -> AgentRun:
    """Write the sample file, start the run, print where to approve it, wait, and print the result."""
    sample = Path(settings.AGENTS_WORKSPACE_ROOT) / DEMO_FOLDER / DEMO_FILE
    sample.parent.mkdir(parents=True, exist_ok=True)
    sample.write_text(SAMPLE)
    run = start_run("documentation", {"path": f"{DEMO_FOLDER}/{DEMO_FILE}"})
    command.stdout.write(f"Started documentation run {run.run_id} on {sample}.")

    proposed = _wait_for_proposal(run, PROPOSAL_TIMEOUT_SECONDS)
    if proposed.is_finished:
        raise CommandError(f"The demo run ended before its approval: {proposed.status}. {proposed.outcome}")
    command.stdout.write("The agent proposes this diff:\n" + proposed.proposal["diff"])
    command.stdout.write(
        f"Approve it as a signed-in approver at {base_url.rstrip('/')}/observer/ "
        f"(request {proposed.proposal_request_id}). Waiting up to {timeout:g} s..."
    )
    finished = wait_until_finished(run.run_id, timeout)
    if finished is None:
        raise CommandError(f"No decision within {timeout:g} s; the request stays open on /observer/.")
    command.stdout.write(f"Run {finished.run_id}: {finished.status}. {finished.outcome}")
    if finished.status == RunStatus.SUCCEEDED:
        command.stdout.write(f"{sample} now reads:\n{sample.read_text()}")
    return finished


def _wait_for_proposal(run: AgentRun, timeout: float) -> AgentRun:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.is_finished or run.proposal_request_id is not None:
            return run
        time.sleep(0.1)
    raise CommandError(
        f"The run made no proposal within {timeout:g} s. Is a worker running (manage.py run_workers)?"
    )
