"""App configuration of Observer."""
from django.apps import AppConfig


class ObserverConfig(AppConfig):
    name = "observer"
    verbose_name = "Observer (approvals)"
