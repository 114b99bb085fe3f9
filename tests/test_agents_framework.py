"""The agent framework without workers: registry, input checks, the Approved token, output checks, the workspace."""
import io
import os
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from nexus.providers import local
from singularity.agents import workspace
from singularity.agents.approval import Approved, NotApproved, mint_approved
from singularity.agents.base import TASK_MARKER, AgentOutputError, UnknownAgent, registered_agents
from singularity.agents.models import AgentRun, RunStatus
from singularity.agents.output import Field, parse_json_object
from singularity.agents.runner import start_run
from singularity.agents.workspace import WorkspaceError
from singularity.agents.runner import AgentRunFlow
from singularity.messaging.queues import FLOW_AGENT_RUN, PROJECT_QUEUES
from singularity.quantum_flow.models import FlowRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(tmp_path, settings):
    settings.AGENTS_WORKSPACE_ROOT = tmp_path / "workspace"
    settings.AGENTS_WORKSPACE_ROOT.mkdir()
    return settings.AGENTS_WORKSPACE_ROOT


def test_registry_lists_the_four_agents():
    assert sorted(registered_agents()) == ["code_quality", "cost_optimizer", "documentation", "self_improving"]


def test_agents_list_command(capsys):
    call_command("agents", "list")
    output = capsys.readouterr().out
    for name in registered_agents():
        assert name in output


def test_agent_run_flow_queue_pinned():
    assert AgentRunFlow.queue_name() == FLOW_AGENT_RUN == "flow_agent_run"
    assert FLOW_AGENT_RUN in PROJECT_QUEUES
    assert [step.name for step in AgentRunFlow.steps] == ["ask", "think", "propose", "act"]


def test_task_marker_matches_local_provider():
    assert local.AGENT_TASK_MARKER == TASK_MARKER
    assert sorted(local._AGENT_ANSWERS) == sorted(registered_agents())


def test_start_run_queues_first_step(clean_queues, root):
    (root / "a.py").write_text("x = 1\n")
    run = start_run("documentation", {"path": "a.py"})

    [message] = clean_queues.read(FLOW_AGENT_RUN, vt=0, qty=10)
    assert message.body == {"flow": "agent_run", "run_id": str(run.run_id), "step": "ask"}
    assert run.status == "queued"
    assert FlowRun.objects.get(pk=run.run_id).input == {"agent": "documentation", "input": {"path": "a.py"}}


def test_unknown_agent_rejected():
    with pytest.raises(UnknownAgent, match="registered agents: code_quality"):
        start_run("nope", {})


def test_run_command_rejects_bad_json():
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("agents", "run", "documentation", "--input", "{nope")


def test_path_not_a_string_named(root):
    with pytest.raises(WorkspaceError, match=r"path 5 is not a string \(int\): give a file path"):
        start_run("documentation", {"path": 5})


@pytest.mark.parametrize(
    "arguments, message",
    [(["--runs", "0"], "--runs 0 is invalid"), (["--runs", "5", "--warmup", "-1"], "--warmup -1 is invalid")],
)
def test_bench_agents_rejects_bad_numbers(arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("bench_agents", *arguments)


@pytest.mark.parametrize("path", ["../outside.py", "/etc/passwd", "sub/../../outside.py"])
def test_path_outside_root_rejected(root, path):
    with pytest.raises(WorkspaceError, match="outside the workspace root"):
        start_run("documentation", {"path": path})
    assert not AgentRun.objects.exists()


def test_symlink_leading_out_rejected(root, tmp_path):
    secret = tmp_path / "secret.py"
    secret.write_text("token = 1\n")
    os.symlink(secret, root / "link.py")
    os.symlink(tmp_path, root / "linked_dir")

    with pytest.raises(WorkspaceError, match="symlink"):
        start_run("code_quality", {"path": "link.py"})
    with pytest.raises(WorkspaceError, match="symlink"):
        start_run("code_quality", {"path": "linked_dir/secret.py"})


def test_symlink_inside_root_allowed(root):
    (root / "real.py").write_text("x = 1\n")
    os.symlink(root / "real.py", root / "alias.py")

    relative, real = workspace.resolve("alias.py")
    assert real == (root / "real.py").resolve()


def test_binary_file_rejected(root):
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(WorkspaceError, match="binary"):
        start_run("documentation", {"path": "image.png"})


def test_missing_file_rejected(root):
    with pytest.raises(WorkspaceError, match="does not exist"):
        start_run("documentation", {"path": "missing.py"})


def test_replace_if_unchanged_writes_atomically(root):
    target = root / "a.py"
    target.write_text("old\n")
    base = workspace.sha256(target.read_bytes())

    replacement = workspace.replace_if_unchanged("a.py", base, "new\n")

    assert target.read_text() == "new\n"
    assert replacement == workspace.Replacement(workspace.sha256(b"new\n"), written=True)
    assert [path.name for path in root.iterdir()] == ["a.py"]


def test_replace_with_same_content_writes_nothing(root):
    target = root / "a.py"
    target.write_text("new\n")

    replacement = workspace.replace_if_unchanged("a.py", workspace.sha256(b"old\n"), "new\n")

    assert replacement == workspace.Replacement(workspace.sha256(b"new\n"), written=False)


def test_replace_if_unchanged_reports_conflict(root):
    from singularity.agents.base import ActConflict

    target = root / "a.py"
    target.write_text("old\n")
    base = workspace.sha256(b"old\n")
    target.write_text("edited by a person\n")

    with pytest.raises(ActConflict, match="changed since the diff was made"):
        workspace.replace_if_unchanged("a.py", base, "new\n")
    assert target.read_text() == "edited by a person\n"


def test_approved_cannot_be_constructed():
    with pytest.raises(TypeError, match="minted by the agent runner"):
        Approved()


def test_mint_requires_approved_decision(root):
    (root / "a.py").write_text("x = 1\n")
    run = start_run("documentation", {"path": "a.py"})
    with pytest.raises(NotApproved, match="no proposal"):
        mint_approved(run)

    run.proposal_request_id = uuid.uuid4()
    with pytest.raises(NotApproved, match="was not sent by run"):
        mint_approved(run)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not an object"),
        ('{"summary": "x"}', "no 'content' field"),
        ('{"content": 3}', "'content' of type int"),
    ],
)
def test_parse_json_object_rejects(text, message):
    with pytest.raises(AgentOutputError, match=message):
        parse_json_object(text, (Field("content", (str,)),))


def test_parse_json_object_accepts_fenced():
    assert parse_json_object('```json\n{"content": "x"}\n```', (Field("content", (str,)),)) == {"content": "x"}


@pytest.mark.parametrize("status", [RunStatus.FAILED, RunStatus.REJECTED])
def test_agents_run_report_fails_unless_succeeded(status):
    from singularity.agents.management.commands.agents import Command

    run = AgentRun(status=status, outcome="stopped")

    with pytest.raises(CommandError, match=f"ended {status}"):
        Command(stdout=io.StringIO())._report(run)


def test_agents_run_report_succeeded_passes():
    from singularity.agents.management.commands.agents import Command

    Command(stdout=io.StringIO())._report(AgentRun(status=RunStatus.SUCCEEDED, outcome="applied"))
