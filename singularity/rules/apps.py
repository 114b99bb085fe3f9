"""App configuration of the rule publisher on the agents' side."""
from django.apps import AppConfig


class RulesConfig(AppConfig):
    name = "singularity.rules"
    # A label of its own keeps its tables and migrations apart from the ``singularity`` app's.
    label = "singularity_rules"
    verbose_name = "Singularity rules (publisher)"

    def ready(self):
        # Registers the genesis_rule_updates_results consumer in the consumer table.
        from singularity.rules import consumers  # noqa: F401
