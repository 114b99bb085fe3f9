"""Pick the provider and model for a request from the routing table."""
from dataclasses import dataclass

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from .models import ANY_TASK_TYPE, Route
from .tables import TableSnapshot


class NoRoute(LookupError):
    """Neither the database nor the settings route this task type and complexity."""


@dataclass(frozen=True)
class Target:
    """One provider and model that can complete a request."""

    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True)
class RouteChoice:
    """The provider and model chosen for one request, where the choice came from, and its fallbacks."""

    provider: str
    model: str
    source: str
    fallbacks: tuple[Target, ...] = ()

    @property
    def targets(self) -> tuple[Target, ...]:
        """Return the routed target followed by the fallbacks, without repeats."""
        ordered = [Target(self.provider, self.model)]
        ordered += [target for target in self.fallbacks if target not in ordered]
        return tuple(ordered)


def parse_fallbacks(value: str | list | tuple | None) -> tuple[Target, ...]:
    """Parse ``provider:model`` entries (a list, or text separated by commas or new lines)."""
    from .models import Provider

    if not value:
        return ()
    entries = value if isinstance(value, (list, tuple)) else value.replace(",", "\n").splitlines()
    targets = []
    for entry in entries:
        entry = str(entry).strip()
        if not entry:
            continue
        provider, separator, model = entry.partition(":")
        if not separator or not provider.strip() or not model.strip():
            raise ValueError(f"Fallback {entry!r} is invalid: write provider:model, for example openai:gpt-4.1-mini.")
        if provider.strip() not in Provider.values:
            raise ValueError(
                f"Fallback {entry!r} names unknown provider {provider.strip()!r}; known providers: "
                f"{', '.join(Provider.values)}."
            )
        targets.append(Target(provider.strip(), model.strip()))
    return tuple(targets)


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
        return RouteChoice(choice.provider, model_override, f"{choice.source}+request model", choice.fallbacks)
    return choice


def _load_routes() -> dict:
    return {
        (route.task_type, route.complexity): RouteChoice(
            route.provider, route.model, f"database route {route.pk}", parse_fallbacks(route.fallbacks)
        )
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
            return RouteChoice(
                entry["provider"], entry["model"], f"settings {key}", parse_fallbacks(entry.get("fallbacks"))
            )
    return None
