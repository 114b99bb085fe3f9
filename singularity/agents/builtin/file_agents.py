"""code_quality and documentation: propose a unified diff of one workspace file, apply it once approved."""
import difflib
import json

from singularity.llm.contracts import TaskType

from .. import workspace
from ..base import ActResult, Agent, AgentOutputError, InvalidAgentInput, Proposal, Question, register
from ..output import Field, parse_json_object

ANSWER_FIELDS = (Field("content", (str,)), Field("summary", (str,), required=False))


class FileAgent(Agent):
    """Shared steps of the file agents: read a file, ask for new content, propose the diff, apply it."""

    instructions = ""

    def validate_input(self, data: dict) -> dict:
        path = data.get("path")
        if path is not None:
            workspace.read(path)  # Raises WorkspaceError with the reason.
        notes = data.get("instructions", "")
        if not isinstance(notes, str):
            raise InvalidAgentInput(f"instructions must be a string, not {type(notes).__name__}.")
        return data

    def question(self, run) -> Question | None:
        if run.input.get("path"):
            return None
        return Question(
            f"Which file should the {self.name} agent work on? Give a path relative to the workspace root.",
            {"workspace_root": str(workspace.workspace_root())},
        )

    def prompt(self, run) -> list[dict]:
        path = run.input.get("path") or run.state.get("answer", "").strip()
        current = workspace.read(path)
        run.state = {**run.state, "path": current.relative, "base_sha256": current.sha256, "original": current.text}
        task = {"path": current.relative, "content": current.text, "instructions": run.input.get("instructions", "")}
        return [
            self.system_message(self.instructions),
            {"role": "user", "content": json.dumps(task)},
        ]

    def propose(self, run, text: str) -> Proposal:
        answer = parse_json_object(text, ANSWER_FIELDS)
        path = run.state["path"]
        new_text = answer["content"]
        diff = "".join(
            difflib.unified_diff(
                run.state["original"].splitlines(keepends=True),
                new_text.splitlines(keepends=True),
                fromfile=f"a/{path}",
                tofile=f"b/{path}",
            )
        )
        if not diff:
            raise AgentOutputError("The model's response produces an empty diff: its content equals the file.")
        summary = answer.get("summary") or f"{self.name}: change {path}"
        payload = {"path": path, "diff": diff, "base_sha256": run.state["base_sha256"], "summary": summary}
        return Proposal(f"{self.name}: {path}: {summary}", payload, {"new_content": new_text})

    def act(self, run, approved) -> ActResult:
        path = run.proposal["path"]
        replacement = workspace.replace_if_unchanged(path, run.proposal["base_sha256"], run.state["new_content"])
        if not replacement.written:
            # Another run, or an earlier attempt of this act step, already wrote the same content.
            return ActResult(
                f"{path} already had the approved content, so nothing was written.",
                {"path": path, "before_sha256": replacement.sha256, "after_sha256": replacement.sha256},
            )
        changes = {"path": path, "before_sha256": run.proposal["base_sha256"], "after_sha256": replacement.sha256}
        return ActResult(f"Applied the approved diff to {path}.", changes)


@register
class CodeQualityAgent(FileAgent):
    name = "code_quality"
    description = "Proposes a cleaner version of a workspace file as a diff and applies it once approved."
    task_type = TaskType.CODE
    instructions = (
        "Improve the quality of the file in the user message without changing its behaviour. Answer with "
        'one JSON object: {"content": the complete improved file, "summary": one line on what changed}.'
    )


@register
class DocumentationAgent(FileAgent):
    name = "documentation"
    description = "Proposes documentation for a workspace file as a diff and applies it once approved."
    task_type = TaskType.DOCUMENTATION
    instructions = (
        "Add or improve the documentation (docstrings, comments, a header) of the file in the user message "
        'without changing its behaviour. Answer with one JSON object: {"content": the complete file, '
        '"summary": one line on what changed}.'
    )
