"""App configuration of Nexus."""
from django.apps import AppConfig


class NexusConfig(AppConfig):
    name = "nexus"
    verbose_name = "Nexus (LLM routing)"

    def ready(self):
        # Registers the ai_requests consumer in the consumer table.
        from nexus import consumers  # noqa: F401
