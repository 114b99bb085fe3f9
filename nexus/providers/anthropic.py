"""The Anthropic provider, through the official SDK's Messages API.

``ANTHROPIC_BASE_URL`` points it at a proxy or a compatible server. The SDK's own retries are
turned off because the flow's ``route_llm`` step retries with backoff, which survives a worker
restart. Status 529 is Anthropic's "overloaded" error and counts as transient, like 429 and 5xx.
"""
import threading

import anthropic
from django.conf import settings

from singularity.llm.contracts import ErrorType

from .base import Completion, LlmCall, ProviderError, ProviderNotConfigured
from .openai import parse_retry_after

NAME = "anthropic"
OVERLOADED_STATUS = 529
TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, OVERLOADED_STATUS})
# Roles the Messages API takes in its message list; system and developer text goes to ``system``.
_CONVERSATION_ROLES = frozenset({"user", "assistant"})


class AnthropicProvider:
    """Call ``client.messages.create`` and map its errors to ``ProviderError``."""

    name = NAME

    def __init__(self):
        self._client = None
        self._lock = threading.Lock()

    def complete(self, call: LlmCall) -> Completion:
        system, messages = _split_messages(call)
        arguments = {
            "model": call.model,
            "max_tokens": call.max_tokens or settings.ANTHROPIC_DEFAULT_MAX_TOKENS,
            "messages": messages,
        }
        if system:
            arguments["system"] = system
        if call.temperature is not None:
            # The Messages API accepts 0 to 1; the request contract allows up to 2 as OpenAI does.
            # Sent through extra_body because SDK 2.x no longer lists temperature as an argument.
            arguments["extra_body"] = {"temperature": min(call.temperature, 1.0)}
        if call.tools is not None:
            arguments["tools"] = call.tools
        try:
            message = self._get_client().messages.create(**arguments)
        except anthropic.APIStatusError as exc:
            raise _status_error(exc) from exc
        except anthropic.APITimeoutError as exc:
            raise ProviderError(
                f"Anthropic request timed out after {settings.ANTHROPIC_TIMEOUT_SECONDS:g} s",
                error_type=ErrorType.PROVIDER_UNAVAILABLE,
                transient=True,
            ) from exc
        except anthropic.APIConnectionError as exc:
            raise ProviderError(
                f"Cannot reach the Anthropic API at {self._get_client().base_url}: {exc}",
                error_type=ErrorType.PROVIDER_UNAVAILABLE,
                transient=True,
            ) from exc

        text = "".join(block.text for block in message.content if getattr(block, "type", None) == "text")
        usage = message.usage
        input_tokens = getattr(usage, "input_tokens", None)
        output_tokens = getattr(usage, "output_tokens", None)
        total = input_tokens + output_tokens if input_tokens is not None and output_tokens is not None else None
        return Completion(
            text=text,
            model=message.model or call.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=total,
            response_id=message.id,
            extra={"stop_reason": message.stop_reason},
        )

    def _get_client(self) -> anthropic.Anthropic:
        with self._lock:
            if self._client is None:
                if not settings.ANTHROPIC_API_KEY:
                    raise ProviderNotConfigured(
                        "ANTHROPIC_API_KEY is not set. Set it (and ANTHROPIC_BASE_URL for a proxy), "
                        "or route this request to another provider."
                    )
                self._client = anthropic.Anthropic(
                    api_key=settings.ANTHROPIC_API_KEY,
                    base_url=settings.ANTHROPIC_BASE_URL or None,
                    timeout=settings.ANTHROPIC_TIMEOUT_SECONDS,
                    max_retries=0,
                )
            return self._client


def _split_messages(call: LlmCall) -> tuple[str, list[dict]]:
    """Move system and developer messages into the ``system`` text; keep user and assistant turns."""
    if call.messages is None:
        return "", [{"role": "user", "content": call.input or ""}]
    system_parts = [message["content"] for message in call.messages if message["role"] not in _CONVERSATION_ROLES]
    turns = [
        {"role": message["role"], "content": message["content"]}
        for message in call.messages
        if message["role"] in _CONVERSATION_ROLES
    ]
    return "\n\n".join(system_parts), turns


def _status_error(exc: anthropic.APIStatusError) -> ProviderError:
    status = exc.status_code
    message = f"Anthropic returned HTTP {status}: {_error_message(exc)}"
    retry_after = parse_retry_after(exc.response.headers)
    if status == 429:
        return ProviderError(message, error_type=ErrorType.RATE_LIMITED, transient=True, retry_after=retry_after, status=status)
    if status in TRANSIENT_STATUSES:
        return ProviderError(
            message, error_type=ErrorType.PROVIDER_UNAVAILABLE, transient=True, retry_after=retry_after, status=status
        )
    return ProviderError(message, error_type=ErrorType.PROVIDER_ERROR, transient=False, status=status)


def _error_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        detail = body.get("error", body)
        if isinstance(detail, dict) and detail.get("message"):
            return f"{detail.get('type', 'error')}: {detail['message']}"
    return exc.message
