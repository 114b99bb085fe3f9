"""Types shared by every provider: the call, the completion and the errors."""
from dataclasses import dataclass, field
from typing import Any

from singularity.llm.contracts import ErrorType


@dataclass(frozen=True)
class LlmCall:
    """One provider call: the routed model plus the request's content and options."""

    model: str
    task_type: str
    messages: list[dict] | None = None
    input: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    tools: list[Any] | None = None
    previous_response_id: str | None = None


@dataclass(frozen=True)
class Completion:
    """A provider's response text and the token usage it reported."""

    text: str
    model: str
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    response_id: str | None = None
    extra: dict = field(default_factory=dict)


class ProviderError(Exception):
    """A provider call failed.

    ``transient`` errors (rate limits, timeouts, 5xx) are worth another attempt, after
    ``retry_after`` seconds when the provider named a delay. Others fail the request at once.
    """

    def __init__(self, message: str, *, error_type: str, transient: bool, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.error_type = error_type
        self.transient = transient
        self.retry_after = retry_after
        self.status = status


class ProviderNotConfigured(ProviderError):
    """The provider needs a setting (an API key, say) that is missing."""

    def __init__(self, message: str):
        super().__init__(message, error_type=ErrorType.PROVIDER_ERROR, transient=False)
