"""App configuration of the human-in-the-loop client on the agents' side."""
from django.apps import AppConfig


class HitlConfig(AppConfig):
    name = "singularity.hitl"
    # A label of its own keeps its tables and migrations apart from the ``singularity`` app's.
    label = "singularity_hitl"
    verbose_name = "Singularity HITL (client)"

    def ready(self):
        # Registers the observer_decisions consumer in the consumer table.
        from singularity.hitl import consumers  # noqa: F401
