"""App configuration of Nexus."""
from django.apps import AppConfig


class NexusConfig(AppConfig):
    name = "nexus"
    verbose_name = "Nexus (LLM routing)"

    def ready(self):
        # Registers the ai_requests consumer and the nexus_llm flow (whose step worker is a consumer too).
        from nexus import consumers, flows  # noqa: F401
