"""App configuration of quantum_flow: load the flow modules and give each flow its queue and consumer."""
from importlib import import_module

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models.signals import post_migrate


class QuantumFlowConfig(AppConfig):
    name = "singularity.quantum_flow"
    label = "quantum_flow"
    verbose_name = "Quantum flow (workflows)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import worker

        worker.connect()
        # Apps register their flows from their own ready(). These modules contain flows that live
        # outside an app, such as the test suite's flows loaded by a worker process.
        for module in settings.QUANTUM_FLOW_MODULES:
            _import_flow_module(module)
        # migrate sends post_migrate once per app, so sender=self runs this once. Every app's ready()
        # has registered its flows by then.
        post_migrate.connect(create_flow_queues, sender=self, dispatch_uid="quantum_flow.create_queues")


def _import_flow_module(entry: str) -> None:
    module = entry.strip()
    if not module or module.startswith("."):
        raise ImproperlyConfigured(
            f"QUANTUM_FLOW_MODULES contains {entry!r}: give absolute dotted module paths separated by "
            "commas, such as myapp.flows."
        )
    try:
        import_module(module)
    except ModuleNotFoundError as exc:
        # Only a missing module named by the setting (or a missing package on its path) is a
        # configuration error. An import that fails inside the module keeps its traceback.
        if exc.name is None or not (module == exc.name or module.startswith(f"{exc.name}.")):
            raise
        raise ImproperlyConfigured(
            f"QUANTUM_FLOW_MODULES names {module!r}, which cannot be imported ({exc}); fix the module path "
            "or remove it from QUANTUM_FLOW_MODULES."
        ) from exc


def create_flow_queues(using="default", **kwargs) -> None:
    """Create the queue of every registered flow (a no-op where it exists) after ``migrate``."""
    from django.db import connections

    from singularity.messaging.install import create_queues

    from .definitions import registered_flows

    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('pgmq.meta') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return  # pgmq is not installed yet; its migration runs before any flow can start.
    create_queues(connection, [flow.queue_name() for flow in registered_flows().values()])
