"""Compute a request's cost from the per-model price table."""
import logging
from decimal import Decimal

from django.conf import settings

from .models import ModelPrice

logger = logging.getLogger(__name__)
PER_MILLION = Decimal(1_000_000)


def price_per_million(model: str) -> tuple[Decimal, Decimal] | None:
    """Return (input, output) US dollars per million tokens for ``model``, or ``None`` if unpriced."""
    row = ModelPrice.objects.filter(model=model).first()
    if row is not None:
        return row.input_usd_per_million, row.output_usd_per_million
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
