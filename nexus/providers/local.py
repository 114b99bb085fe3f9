"""The offline provider: deterministic responses that state plainly that no model wrote them."""
import hashlib
import json

from .base import Completion, LlmCall

NAME = "local"


class LocalProvider:
    """Respond without any network access; the default when no provider is configured."""

    name = NAME

    def complete(self, call: LlmCall) -> Completion:
        prompt = call.input if call.input is not None else _last_user_text(call.messages or [])
        agent_answer = _agent_answer(call.messages or [], prompt)
        if agent_answer is not None:
            return _completion(call, agent_answer)
        digest = hashlib.sha256(prompt.encode()).hexdigest()[:12]
        excerpt = " ".join(prompt.split())[:120]
        text = (
            f"[offline local provider, model {call.model}] This answer did not come from a language "
            f"model. Task type {call.task_type!r}; prompt digest {digest}; you wrote: \"{excerpt}\". "
            "Set LLM_PROVIDER=openai and OPENAI_API_KEY for real answers."
        )
        return _completion(call, text)


def _completion(call: LlmCall, text: str) -> Completion:
    # Token counts are whitespace-separated words: a stand-in, not a tokenizer's count.
    input_tokens = sum(len((message.get("content") or "").split()) for message in call.messages or []) or len(
        (call.input or "").split()
    )
    output_tokens = len(text.split())
    return Completion(text, call.model, input_tokens, output_tokens, input_tokens + output_tokens)


def _last_user_text(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message.get("content") or ""
    return messages[-1].get("content", "") if messages else ""


# Agents (singularity.agents) start their system message with this marker and the agent's name,
# and send their task as JSON in the user message. Keep it equal to singularity.agents.base.TASK_MARKER.
AGENT_TASK_MARKER = "singularity-agent-task:"
OFFLINE_LABEL = "offline local provider, not a language model"
_COMMENT_PREFIXES = {".py": "# ", ".sh": "# ", ".rb": "# ", ".yaml": "# ", ".yml": "# ", ".toml": "# ",
                     ".js": "// ", ".ts": "// ", ".go": "// ", ".c": "// ", ".rs": "// ", ".java": "// "}


def _agent_answer(messages: list[dict], prompt: str) -> str | None:
    """Return a well-formed JSON answer for an agent's task, or None for any other request."""
    system = next((message.get("content") or "" for message in messages if message.get("role") == "system"), "")
    first_line = system.split("\n", 1)[0]
    if not first_line.startswith(AGENT_TASK_MARKER):
        return None
    builder = _AGENT_ANSWERS.get(first_line[len(AGENT_TASK_MARKER):].strip())
    try:
        task = json.loads(prompt)
    except json.JSONDecodeError:
        return None
    if builder is None or not isinstance(task, dict):
        return None
    return json.dumps(builder(task))


def _documentation(task: dict) -> dict:
    path = str(task.get("path", ""))
    content = str(task.get("content", ""))
    suffix = path[path.rfind("."):] if "." in path else ""
    prefix = _COMMENT_PREFIXES.get(suffix, "")
    lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
    header = f"{prefix}{path}: {lines} {'line' if lines == 1 else 'lines'}. Documentation placeholder written by the {OFFLINE_LABEL}.\n"
    return {"content": header + content, "summary": f"Add a header line ({OFFLINE_LABEL})"}


def _code_quality(task: dict) -> dict:
    content = str(task.get("content", ""))
    cleaned = "\n".join(line.rstrip() for line in content.splitlines())
    cleaned = cleaned.rstrip("\n") + "\n" if cleaned.strip() else cleaned
    return {"content": cleaned, "summary": f"Strip trailing whitespace and end with one newline ({OFFLINE_LABEL})"}


def _self_improving(task: dict) -> dict:
    failures = task.get("failures") or []
    first = failures[0] if failures and isinstance(failures[0], dict) else {}
    kind = str(first.get("kind") or "described_failure")
    signal = str(first.get("error_type") or first.get("reason") or first.get("error") or task.get("described_by_person") or "unknown")
    return {
        "namespace": "agents.offline",
        "rule_type": "validation",
        "pattern": {"failure_kind": kind, "signal": signal[:200]},
        "action": {"type": "flag", "message": f"Flag requests like this one ({OFFLINE_LABEL})"},
        "confidence": 0.5,
        "rationale": (
            f"Written by the {OFFLINE_LABEL} from the first of {len(failures)} failures."
            if failures
            else f"Written by the {OFFLINE_LABEL} from the failure a person described."
        ),
    }


def _cost_optimizer(task: dict) -> dict:
    candidates = task.get("candidates") or [{}]
    first = candidates[0] if isinstance(candidates[0], dict) else {}
    proposed = first.get("proposed") or {}
    return {
        "task_type": first.get("task_type", ""),
        "complexity": first.get("complexity", ""),
        "provider": proposed.get("provider", ""),
        "model": proposed.get("model", ""),
        "reason": f"The first candidate, picked by the {OFFLINE_LABEL}.",
    }


_AGENT_ANSWERS = {
    "documentation": _documentation,
    "code_quality": _code_quality,
    "self_improving": _self_improving,
    "cost_optimizer": _cost_optimizer,
}
