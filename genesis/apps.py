"""App configuration of Genesis."""
from django.apps import AppConfig


class GenesisConfig(AppConfig):
    name = "genesis"
    verbose_name = "Genesis (rules)"

    def ready(self):
        # Registers the genesis_rule_updates consumer in the consumer table.
        from genesis import consumers  # noqa: F401
