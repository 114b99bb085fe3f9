"""Pick the provider and model for a request from the routing table."""
from dataclasses import dataclass

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from .models import ANY_TASK_TYPE, Route
from .tables import TableSnapshot


class NoRoute(LookupError):
    """Neither the database nor the settings route this task type and complexity."""


@dataclass(frozen=True)
class RouteChoice:
    """The provider and model chosen for one request, and where the choice came from."""

    provider: str
    model: str
    source: str


def resolve_route(task_type: str, complexity: str, *, model_override: str | None = None) -> RouteChoice:
    """Return the route for ``task_type`` at ``complexity``.

    Lookup order: an enabled database route for the task type, one for any task type (``*``), then
    the same two keys in ``settings.NEXUS_ROUTES``. A request's own ``model`` replaces the model
    but keeps the routed provider.
    """
    choice = _database_route(task_type, complexity) or _settings_route(task_type, complexity)
    if choice is None:
        raise NoRoute(
            f"No route for task_type {task_type!r} at complexity {complexity!r}. Add one in the admin "
            "(Nexus > Routes) or to NEXUS_ROUTES in the settings."
        )
    if model_override:
        return RouteChoice(choice.provider, model_override, f"{choice.source}+request model")
    return choice


def _load_routes() -> dict:
    return {
        (route.task_type, route.complexity): RouteChoice(route.provider, route.model, f"database route {route.pk}")
        for route in Route.objects.filter(enabled=True)
    }


_routes = TableSnapshot(_load_routes)
post_save.connect(_routes.invalidate, sender=Route, dispatch_uid="nexus.routes.saved")
post_delete.connect(_routes.invalidate, sender=Route, dispatch_uid="nexus.routes.deleted")


def _database_route(task_type: str, complexity: str) -> RouteChoice | None:
    routes = _routes.get()
    return routes.get((task_type, complexity)) or routes.get((ANY_TASK_TYPE, complexity))


def _settings_route(task_type: str, complexity: str) -> RouteChoice | None:
    for key in (f"{task_type}:{complexity}", f"{ANY_TASK_TYPE}:{complexity}"):
        entry = settings.NEXUS_ROUTES.get(key)
        if entry:
            return RouteChoice(entry["provider"], entry["model"], f"settings {key}")
    return None
