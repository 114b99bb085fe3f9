"""The offline provider: deterministic responses that state plainly that no model wrote them."""
import hashlib

from .base import Completion, LlmCall

NAME = "local"


class LocalProvider:
    """Respond without any network access; the default when no provider is configured."""

    name = NAME

    def complete(self, call: LlmCall) -> Completion:
        prompt = call.input if call.input is not None else _last_user_text(call.messages or [])
        digest = hashlib.sha256(prompt.encode()).hexdigest()[:12]
        excerpt = " ".join(prompt.split())[:120]
        text = (
            f"[offline local provider, model {call.model}] This answer did not come from a language "
            f"model. Task type {call.task_type!r}; prompt digest {digest}; you wrote: \"{excerpt}\". "
            "Set LLM_PROVIDER=openai and OPENAI_API_KEY for real answers."
        )
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
