"""cost_optimizer: find task types that could use a cheaper model and, once approved, route them there.

Nexus exposes no function that changes a route, so ``act`` writes the ``nexus.Route`` row through
the ORM; nexus's admin edits the same table, and its routing reads rows over the settings.
"""
import json
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone

from singularity.llm.contracts import TaskType

from ..base import ActConflict, ActResult, Agent, AgentOutputError, InvalidAgentInput, Proposal, register
from ..output import Field, parse_json_object

DEFAULT_WINDOW_DAYS = 7
CHOICE_FIELDS = (
    Field("task_type", (str,)),
    Field("complexity", (str,)),
    Field("provider", (str,)),
    Field("model", (str,)),
    Field("reason", (str,), required=False),
)


@dataclass(frozen=True)
class Usage:
    results: int
    errors: int
    spend_usd: Decimal

    @property
    def error_rate(self) -> float:
        return self.errors / self.results if self.results else 0.0


def usage_by_task(since) -> dict[tuple[str, str, str, str], Usage]:
    """Return results, errors and spend per (task_type, complexity, provider, model) since ``since``."""
    from singularity.models import JobResult

    rows = (
        JobResult.objects.filter(created_at__gte=since)
        .values("request__task_type", "request__complexity", "provider", "model")
        .annotate(results=Count("id"), errors=Count("id", filter=Q(status="error")), spend=Sum("cost_usd"))
    )
    return {
        (row["request__task_type"], row["request__complexity"], row["provider"], row["model"]): Usage(
            row["results"], row["errors"], row["spend"] or Decimal(0)
        )
        for row in rows
    }


def find_candidates(since) -> list[dict]:
    """Return cheaper routes whose observed error rates stay within ``AGENTS_COST_MAX_ERROR_RATE``."""
    from nexus.models import Provider
    from nexus.pricing import price_per_million
    from nexus.routing import NoRoute, resolve_route

    usage = usage_by_task(since)
    max_rate = settings.AGENTS_COST_MAX_ERROR_RATE
    min_samples = settings.AGENTS_COST_MIN_SAMPLES

    # A model's error rate over every task type decides whether it is reliable enough to move to.
    by_model: dict[tuple[str, str], Usage] = {}
    for (_, _, provider, model), item in usage.items():
        seen = by_model.get((provider, model), Usage(0, 0, Decimal(0)))
        by_model[(provider, model)] = Usage(seen.results + item.results, seen.errors + item.errors, seen.spend_usd + item.spend_usd)
    reliable = {
        key: item for key, item in by_model.items()
        if key[0] in Provider.values and item.results >= min_samples and item.error_rate <= max_rate
        and price_per_million(key[1]) is not None
    }

    candidates = []
    for task_type, complexity in sorted({(key[0], key[1]) for key in usage}):
        try:
            route = resolve_route(task_type, complexity)
        except NoRoute:
            continue
        current = usage.get((task_type, complexity, route.provider, route.model))
        current_price = price_per_million(route.model)
        if current is None or current_price is None or current.results < min_samples or current.error_rate > max_rate:
            continue
        cheaper = sorted(
            (sum(price_per_million(model)), provider, model, item)
            for (provider, model), item in reliable.items()
            if sum(price_per_million(model)) < sum(current_price)
        )
        if not cheaper:
            continue
        price, provider, model, item = cheaper[0]
        spend = sum((value.spend_usd for key, value in usage.items() if key[:2] == (task_type, complexity)), Decimal(0))
        candidates.append({
            "task_type": task_type, "complexity": complexity,
            "current": {"provider": route.provider, "model": route.model, "error_rate": round(current.error_rate, 4)},
            "proposed": {"provider": provider, "model": model, "error_rate": round(item.error_rate, 4)},
            "spend_usd": str(spend),
            "saving_percent": round(float(1 - price / sum(current_price)) * 100, 1),
        })
    return candidates


@register
class CostOptimizerAgent(Agent):
    name = "cost_optimizer"
    description = "Proposes a cheaper model for a task type whose error rate allows it, and updates nexus's route once approved."
    task_type = TaskType.ANALYSIS
    instructions = (
        "The user message lists task types that could move to a cheaper model, with spend and error rates. "
        'Pick the one change worth making. Answer with one JSON object: {"task_type", "complexity", '
        '"provider", "model" (copied from one candidate\'s "proposed"), "reason": one line}.'
    )

    def validate_input(self, data: dict) -> dict:
        days = data.get("window_days", DEFAULT_WINDOW_DAYS)
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 365:
            raise InvalidAgentInput(f"window_days={days!r} is invalid: give a whole number of days from 1 to 365.")
        return {**data, "window_days": days}

    def prompt(self, run) -> list[dict] | None:
        candidates = find_candidates(timezone.now() - timedelta(days=run.input["window_days"]))
        run.state = {**run.state, "candidates": candidates}
        if not candidates:
            return None
        return [self.system_message(self.instructions), {"role": "user", "content": json.dumps({"candidates": candidates})}]

    def propose(self, run, text: str) -> Proposal:
        choice = parse_json_object(text, CHOICE_FIELDS)
        key = (choice["task_type"], choice["complexity"], choice["provider"], choice["model"])
        matching = [
            item for item in run.state["candidates"]
            if (item["task_type"], item["complexity"], item["proposed"]["provider"], item["proposed"]["model"]) == key
        ]
        if not matching:
            raise AgentOutputError(f"The model chose {':'.join(key)}, which is not one of the candidates.")
        candidate = matching[0]
        payload = {**candidate, "reason": choice.get("reason", "")}
        summary = (
            f"Route {candidate['task_type']}/{candidate['complexity']} from {candidate['current']['model']} "
            f"to {candidate['proposed']['model']} (about {candidate['saving_percent']}% cheaper)"
        )
        return Proposal(summary, payload)

    def act(self, run, approved) -> ActResult:
        from nexus.models import Route

        proposal = run.proposal
        task_type, complexity = proposal["task_type"], proposal["complexity"]
        current, proposed = proposal["current"], proposal["proposed"]
        route = Route.objects.select_for_update().filter(task_type=task_type, complexity=complexity).first()
        if route is not None and (route.provider, route.model) not in {
            (current["provider"], current["model"]), (proposed["provider"], proposed["model"])
        }:
            raise ActConflict(
                f"The route {task_type}/{complexity} now uses {route.provider}:{route.model}, not "
                f"{current['provider']}:{current['model']} as when the change was proposed; nothing was changed."
            )
        before = None if route is None else f"{route.provider}:{route.model}"
        if route is None:
            route = Route(task_type=task_type, complexity=complexity)
        route.provider, route.model, route.enabled = proposed["provider"], proposed["model"], True
        route.save()
        changes = {"route_id": route.pk, "before": before, "after": f"{route.provider}:{route.model}",
                   "task_type": task_type, "complexity": complexity}
        return ActResult(f"Routed {task_type}/{complexity} to {route.provider}:{route.model}.", changes)
