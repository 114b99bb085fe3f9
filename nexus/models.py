"""Nexus's tables: routes that override the settings' routing table, and model prices."""
from django.db import models

from singularity.llm.contracts import Complexity, TaskType

ANY_TASK_TYPE = "*"


class Provider(models.TextChoices):
    LOCAL = "local", "Offline local provider"
    OPENAI = "openai", "OpenAI Responses API (or a compatible server)"


class Route(models.Model):
    """A routing-table entry: the provider and model for a task type at a complexity (``*``: any task type)."""

    task_type = models.CharField(
        max_length=40, choices=[(ANY_TASK_TYPE, "any task type"), *TaskType.choices], default=ANY_TASK_TYPE
    )
    complexity = models.CharField(max_length=20, choices=Complexity.choices)
    provider = models.CharField(max_length=20, choices=Provider.choices)
    model = models.CharField(max_length=200)
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
