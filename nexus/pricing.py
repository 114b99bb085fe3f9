"""Compute a request's cost from the per-model price table."""
import logging
from decimal import Decimal

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from .models import ModelPrice
from .tables import TableSnapshot

logger = logging.getLogger(__name__)
PER_MILLION = Decimal(1_000_000)


def _load_prices() -> dict:
    return {row.model: (row.input_usd_per_million, row.output_usd_per_million) for row in ModelPrice.objects.all()}


_prices = TableSnapshot(_load_prices)
post_save.connect(_prices.invalidate, sender=ModelPrice, dispatch_uid="nexus.prices.saved")
post_delete.connect(_prices.invalidate, sender=ModelPrice, dispatch_uid="nexus.prices.deleted")


def price_per_million(model: str) -> tuple[Decimal, Decimal] | None:
    """Return (input, output) US dollars per million tokens for ``model``, or ``None`` if unpriced."""
    row = _prices.get().get(model)
    if row is not None:
        return row
    entry = settings.LLM_PRICES.get(model)
    if entry is None:
        return None
    return Decimal(str(entry["input"])), Decimal(str(entry["output"]))


def cost_usd(model: str, input_tokens: int | None, output_tokens: int | None) -> Decimal | None:
    """Return the cost of one call, or ``None`` when the model has no price or usage is unknown."""
    prices = price_per_million(model)
    if prices is None:
        logger.warning("nexus.model_unpriced", extra={"model": model})
        return None
    if input_tokens is None or output_tokens is None:
        return None
    input_price, output_price = prices
    return (input_price * input_tokens + output_price * output_tokens) / PER_MILLION
