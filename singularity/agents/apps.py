"""App configuration of the agents' framework and the built-in agents."""
from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "singularity.agents"
    # A label of its own keeps its tables and migrations apart from the ``singularity`` app's.
    label = "singularity_agents"
    verbose_name = "Singularity agents"

    def ready(self):
        # Registers the agent_run flow (and so its step consumer) and the built-in agents.
        from singularity.agents import builtin, runner  # noqa: F401
