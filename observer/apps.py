"""App configuration of Observer."""
from django.apps import AppConfig


class ObserverConfig(AppConfig):
    name = "observer"
    verbose_name = "Observer (approvals)"

    def ready(self):
        # Registers the observer_hitl_requests consumer in the consumer table.
        from observer import consumers  # noqa: F401
