"""The table of LLM providers by name."""
from .anthropic import AnthropicProvider
from .base import Completion, LlmCall, ProviderError, ProviderNotConfigured
from .local import LocalProvider
from .openai import OpenAIProvider

_PROVIDERS = {"local": LocalProvider(), "openai": OpenAIProvider(), "anthropic": AnthropicProvider()}


class UnknownProvider(LookupError):
    """A route names a provider that is not in the table."""


def get_provider(name: str):
    try:
        return _PROVIDERS[name]
    except KeyError:
        raise UnknownProvider(
            f"Unknown provider {name!r} in the routing table; known providers: {', '.join(sorted(_PROVIDERS))}."
        ) from None


def reset_clients() -> None:
    """Drop cached SDK clients so changed settings take effect (used by tests)."""
    _PROVIDERS["openai"] = OpenAIProvider()
    _PROVIDERS["anthropic"] = AnthropicProvider()


__all__ = ["Completion", "LlmCall", "ProviderError", "ProviderNotConfigured", "UnknownProvider", "get_provider", "reset_clients"]
