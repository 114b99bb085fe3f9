"""Benchmark an agent run's approve-to-applied time: documentation runs approved one at a time."""
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from singularity.management.benchmarking import (
    ensure_no_other_worker,
    percentile_line,
    server_version,
    start_worker,
    stop_worker,
)

SAMPLE = 'def greet(name):\n    return "Hello, " + name\n'
BENCH_APPROVER = "bench-approver"
STEP_TIMEOUT = 60.0  # seconds for a run to reach its approval, or to finish after it


class Command(BaseCommand):
    help = (
        "Start N documentation runs on sample files, one at a time, with one run_workers process and the "
        "offline local provider. Approve each proposal as a benchmark approver through observer's "
        "decision function (what the approvers' page calls) and print the time from the approval to "
        "the run's applied change. Runs and approvals stay in the database as the record."
    )

    def add_arguments(self, parser):
        parser.add_argument("--runs", type=int, default=50, help="Timed runs (default 50).")
        parser.add_argument("--warmup", type=int, default=3, help="Untimed runs first (default 3).")

    def handle(self, *args, runs, warmup, **options):
        if runs < 1:
            raise CommandError(f"--runs {runs} is invalid: give a number >= 1.")
        if warmup < 0:
            raise CommandError(f"--warmup {warmup} is invalid: give a number >= 0.")
        # Checked before the workspace exists; start_worker checks again.
        ensure_no_other_worker()
        logging.getLogger("singularity").setLevel(logging.WARNING)
        logging.getLogger("observer").setLevel(logging.WARNING)

        approver = _bench_approver()
        workspace = Path(tempfile.mkdtemp(prefix="bench-agents-"))
        settings.AGENTS_WORKSPACE_ROOT = workspace
        worker = start_worker(AGENTS_WORKSPACE_ROOT=str(workspace), LLM_PROVIDER="local")
        try:
            for number in range(warmup):
                self._one_run(workspace, f"warmup_{number}.py", approver)
            samples = [self._one_run(workspace, f"timed_{number}.py", approver) for number in range(runs)]
        finally:
            stop_worker(worker)
            shutil.rmtree(workspace, ignore_errors=True)

        self.stdout.write(
            f"PostgreSQL {server_version()}, {os.cpu_count()} CPUs, "
            f"agent documentation, offline local provider, one worker process"
        )
        self.stdout.write(percentile_line("approve -> change applied", samples, width=28))

    def _one_run(self, workspace: Path, name: str, approver) -> float:
        """Run the agent on a new file up to its approval, approve, and return approve-to-applied in ms."""
        from observer import decisions
        from singularity.agents.completion import wait_until_finished
        from singularity.agents.models import AgentRun, RunStatus
        from singularity.agents.runner import start_run

        (workspace / name).write_text(SAMPLE)
        run = start_run("documentation", {"path": name})
        approval = _wait_for_approval(run.run_id)
        started = time.perf_counter()
        decisions.approve(approval.pk, approver)
        finished = wait_until_finished(run.run_id, STEP_TIMEOUT)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if finished is None or finished.status != RunStatus.SUCCEEDED:
            current = AgentRun.objects.get(run_id=run.run_id)
            raise CommandError(f"Run {run.run_id} ended {current.status} instead of succeeded: {current.outcome}")
        return elapsed_ms


def _wait_for_approval(run_id):
    """Return observer's Approval for the run's proposal once it is ingested (polled: this is set-up time)."""
    from observer.models import Approval
    from singularity.agents.models import AgentRun

    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        run = AgentRun.objects.get(run_id=run_id)
        if run.is_finished:
            raise CommandError(f"Run {run_id} ended {run.status} before its approval: {run.outcome}")
        if run.proposal_request_id is not None:
            approval = Approval.objects.filter(request_id=run.proposal_request_id).first()
            if approval is not None:
                return approval
        time.sleep(0.005)
    raise CommandError(f"Run {run_id} reached no approval within {STEP_TIMEOUT:g} s; is the worker healthy?")


def _bench_approver():
    """Return the benchmark's approver: a user in the Approvers group, created once, with an unusable password."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType

    from observer.permissions import ensure_approvers_group

    user, created = get_user_model().objects.get_or_create(username=BENCH_APPROVER)
    if created:
        user.set_unusable_password()
        user.save()
    user.groups.add(ensure_approvers_group(Group, Permission, ContentType))
    return get_user_model().objects.get(pk=user.pk)  # a fresh object: permissions are cached per instance
