"""Nexus's tables: routes that override the settings' routing table, and model prices."""
from django.core.exceptions import ValidationError
from django.db import models

from singularity.llm.contracts import Complexity, TaskType

ANY_TASK_TYPE = "*"


class Provider(models.TextChoices):
    LOCAL = "local", "Offline local provider"
    OPENAI = "openai", "OpenAI Responses API (or a compatible server)"
    ANTHROPIC = "anthropic", "Anthropic Messages API"


def validate_fallbacks(value: str) -> None:
    """Check a fallback list: ``provider:model`` entries separated by commas or new lines."""
    from .routing import parse_fallbacks

    try:
        parse_fallbacks(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


class Route(models.Model):
    """A routing-table entry: the provider and model for a task type at a complexity (``*``: any task type)."""

    task_type = models.CharField(
        max_length=40, choices=[(ANY_TASK_TYPE, "any task type"), *TaskType.choices], default=ANY_TASK_TYPE
    )
    complexity = models.CharField(max_length=20, choices=Complexity.choices)
    provider = models.CharField(max_length=20, choices=Provider.choices)
    model = models.CharField(max_length=200)
    fallbacks = models.TextField(
        blank=True,
        validators=[validate_fallbacks],
        help_text=(
            "Models tried in order when this one fails for good (or stays unavailable through every "
            "attempt): one provider:model per line, for example anthropic:claude-3-5-haiku-latest."
        ),
    )
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["task_type", "complexity"]
        constraints = [models.UniqueConstraint(fields=["task_type", "complexity"], name="nexus_route_unique")]

    def __str__(self) -> str:
        return f"{self.task_type}/{self.complexity} -> {self.provider}:{self.model}"


class ModelPrice(models.Model):
    """The price of one model in US dollars per million tokens; overrides ``settings.LLM_PRICES``."""

    model = models.CharField(max_length=200, unique=True)
    input_usd_per_million = models.DecimalField(max_digits=12, decimal_places=6)
    output_usd_per_million = models.DecimalField(max_digits=12, decimal_places=6)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]

    def __str__(self) -> str:
        return f"{self.model}: ${self.input_usd_per_million}/M in, ${self.output_usd_per_million}/M out"


class UsageRecord(models.Model):
    """Tokens, cost and latency of one answered (or failed) LLM request, written by the track_metrics step.

    One row per request: ``request_id`` is unique, so recording a request twice changes nothing.
    """

    request_id = models.UUIDField(unique=True)
    agent_id = models.CharField(max_length=200, blank=True)
    task_type = models.CharField(max_length=40, db_index=True)
    complexity = models.CharField(max_length=20)
    status = models.CharField(max_length=20)
    error_type = models.CharField(max_length=40, blank=True)
    provider = models.CharField(max_length=20, blank=True)
    model = models.CharField(max_length=200, blank=True, db_index=True)
    # True when a fallback model produced the result because the routed one failed.
    fallback_used = models.BooleanField(default=False)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["model", "task_type"], name="nexus_usage_model_task")]

    def __str__(self) -> str:
        return f"{self.request_id}: {self.model or '-'} {self.status}"
