"""The OpenAI provider, through the official SDK's Responses API.

``OPENAI_BASE_URL`` points it at any server that speaks the same API. The SDK's own retries are
turned off: nexus retries through the queue, so a retry survives a worker restart.
"""
import threading

import openai
from django.conf import settings

from singularity.llm.contracts import ErrorType

from .base import Completion, LlmCall, ProviderError, ProviderNotConfigured

NAME = "openai"
TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAIProvider:
    """Call ``client.responses.create`` and map its errors to ``ProviderError``."""

    name = NAME

    def __init__(self):
        self._client = None
        self._lock = threading.Lock()

    def complete(self, call: LlmCall) -> Completion:
        arguments = {"model": call.model, "input": call.messages if call.messages is not None else call.input}
        for key, value in (
            ("max_output_tokens", call.max_tokens),
            ("temperature", call.temperature),
            ("tools", call.tools),
            ("previous_response_id", call.previous_response_id),
        ):
            if value is not None:
                arguments[key] = value
        try:
            response = self._get_client().responses.create(**arguments)
        except openai.APIStatusError as exc:
            raise _status_error(exc) from exc
        except openai.APITimeoutError as exc:
            raise ProviderError(
                f"OpenAI request timed out after {settings.OPENAI_TIMEOUT_SECONDS:g} s",
                error_type=ErrorType.PROVIDER_UNAVAILABLE,
                transient=True,
            ) from exc
        except openai.APIConnectionError as exc:
            raise ProviderError(
                f"Cannot reach the OpenAI API at {self._get_client().base_url}: {exc}",
                error_type=ErrorType.PROVIDER_UNAVAILABLE,
                transient=True,
            ) from exc

        usage = response.usage
        return Completion(
            text=response.output_text,
            model=response.model or call.model,
            input_tokens=getattr(usage, "input_tokens", None),
            output_tokens=getattr(usage, "output_tokens", None),
            total_tokens=getattr(usage, "total_tokens", None),
            response_id=response.id,
        )

    def _get_client(self) -> openai.OpenAI:
        with self._lock:
            if self._client is None:
                if not settings.OPENAI_API_KEY:
                    raise ProviderNotConfigured(
                        "OPENAI_API_KEY is not set. Set it (and OPENAI_BASE_URL for a compatible server), "
                        "or route this request to the local provider."
                    )
                self._client = openai.OpenAI(
                    api_key=settings.OPENAI_API_KEY,
                    base_url=settings.OPENAI_BASE_URL or None,
                    timeout=settings.OPENAI_TIMEOUT_SECONDS,
                    max_retries=0,
                )
            return self._client


def _status_error(exc: openai.APIStatusError) -> ProviderError:
    status = exc.status_code
    message = f"OpenAI returned HTTP {status}: {_error_message(exc)}"
    if status == 429:
        return ProviderError(
            message, error_type=ErrorType.RATE_LIMITED, transient=True, retry_after=_retry_after(exc), status=status
        )
    if status in TRANSIENT_STATUSES:
        return ProviderError(
            message, error_type=ErrorType.PROVIDER_UNAVAILABLE, transient=True, retry_after=_retry_after(exc), status=status
        )
    return ProviderError(message, error_type=ErrorType.PROVIDER_ERROR, transient=False, status=status)


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        detail = body.get("error", body)
        if isinstance(detail, dict) and detail.get("message"):
            return str(detail["message"])
    return exc.message


def _retry_after(exc: openai.APIStatusError) -> float | None:
    return parse_retry_after(exc.response.headers)


def parse_retry_after(headers) -> float | None:
    """Read the delay from ``retry-after-ms`` or ``retry-after`` (seconds); ignore dates and junk."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if 0 <= seconds <= 3600:
            return seconds
    return None
