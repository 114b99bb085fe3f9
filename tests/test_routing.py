"""Nexus's routing table and pricing."""
from decimal import Decimal

import pytest

from nexus.models import ModelPrice, Route
from nexus.pricing import cost_usd
from nexus.routing import NoRoute, resolve_route

pytestmark = pytest.mark.django_db


def test_settings_route_by_complexity(settings):
    settings.NEXUS_ROUTES = {"*:complex": {"provider": "local", "model": "local-large"}}

    route = resolve_route("code", "complex")

    assert (route.provider, route.model) == ("local", "local-large")
    assert route.source == "settings *:complex"


def test_settings_task_type_beats_wildcard(settings):
    settings.NEXUS_ROUTES = {
        "*:simple": {"provider": "local", "model": "local-small"},
        "code:simple": {"provider": "openai", "model": "gpt-4.1-mini"},
    }

    assert resolve_route("code", "simple").model == "gpt-4.1-mini"
    assert resolve_route("general", "simple").model == "local-small"


def test_database_route_overrides_settings(settings):
    settings.NEXUS_ROUTES = {"*:simple": {"provider": "local", "model": "local-small"}}
    Route.objects.create(task_type="*", complexity="simple", provider="openai", model="gpt-4.1-nano")
    Route.objects.create(task_type="code", complexity="simple", provider="openai", model="gpt-4.1")

    assert resolve_route("code", "simple").model == "gpt-4.1"
    assert resolve_route("general", "simple").model == "gpt-4.1-nano"


def test_disabled_database_route_ignored(settings):
    settings.NEXUS_ROUTES = {"*:simple": {"provider": "local", "model": "local-small"}}
    Route.objects.create(task_type="*", complexity="simple", provider="openai", model="gpt-4.1", enabled=False)

    assert resolve_route("general", "simple").model == "local-small"


def test_request_model_keeps_provider(settings):
    settings.NEXUS_ROUTES = {"*:simple": {"provider": "openai", "model": "gpt-4.1-nano"}}

    route = resolve_route("general", "simple", model_override="gpt-4o")

    assert (route.provider, route.model) == ("openai", "gpt-4o")


def test_missing_route_names_the_key(settings):
    settings.NEXUS_ROUTES = {}

    with pytest.raises(NoRoute, match="'analysis' at complexity 'medium'"):
        resolve_route("analysis", "medium")


def test_cost_from_settings_prices(settings):
    settings.LLM_PRICES = {"m": {"input": 2.0, "output": 8.0}}

    assert cost_usd("m", 1000, 500) == Decimal("0.006")


def test_cost_from_database_price(settings):
    settings.LLM_PRICES = {"m": {"input": 2.0, "output": 8.0}}
    ModelPrice.objects.create(model="m", input_usd_per_million=Decimal("1"), output_usd_per_million=Decimal("1"))

    assert cost_usd("m", 1000, 1000) == Decimal("0.002")


def test_cost_unknown_model(settings, caplog):
    settings.LLM_PRICES = {}

    assert cost_usd("mystery", 10, 10) is None
    assert [record.model for record in caplog.records if record.msg == "nexus.model_unpriced"] == ["mystery"]
