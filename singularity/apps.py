"""App configuration of the agents' side."""
from django.apps import AppConfig


class SingularityConfig(AppConfig):
    name = "singularity"
    verbose_name = "Singularity"

    def ready(self):
        # Registers the ai_results consumer in the consumer table.
        from singularity.llm import consumers  # noqa: F401
