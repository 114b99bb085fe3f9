"""Admin pages of Nexus: the routing table and the model prices."""
from django.contrib import admin

from .models import ModelPrice, Route


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ["task_type", "complexity", "provider", "model", "enabled", "updated_at"]
    list_filter = ["enabled", "provider", "complexity", "task_type"]
    list_editable = ["enabled"]
    search_fields = ["model"]


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ["model", "input_usd_per_million", "output_usd_per_million", "updated_at"]
    search_fields = ["model"]
