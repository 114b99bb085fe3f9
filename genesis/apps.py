"""App configuration of Genesis."""
from django.apps import AppConfig


class GenesisConfig(AppConfig):
    name = "genesis"
    verbose_name = "Genesis (rules)"
