"""Admin pages of Nexus: the routing table with its fallbacks, model prices and usage per request."""
from django.contrib import admin
from django.db.models import Avg, Count, Sum

from .models import ModelPrice, Route, UsageRecord


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ["task_type", "complexity", "provider", "model", "fallbacks", "enabled", "updated_at"]
    list_filter = ["enabled", "provider", "complexity", "task_type"]
    list_editable = ["enabled"]
    search_fields = ["model", "fallbacks"]


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ["model", "input_usd_per_million", "output_usd_per_million", "updated_at"]
    search_fields = ["model"]


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """Read-only: rows are written by the nexus_llm flow's track_metrics step."""

    list_display = [
        "request_id", "task_type", "provider", "model", "status", "fallback_used",
        "total_tokens", "cost_usd", "latency_ms", "created_at",
    ]
    list_filter = ["status", "provider", "model", "task_type", "fallback_used", "created_at"]
    search_fields = ["request_id", "agent_id", "model"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context=extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            # Totals per model and task type over the filtered rows, shown above the list.
            response.context_data["usage_totals"] = list(
                changelist.queryset.order_by()
                .values("model", "task_type")
                .annotate(
                    requests=Count("id"),
                    total_tokens=Sum("total_tokens"),
                    cost_usd=Sum("cost_usd"),
                    mean_latency_ms=Avg("latency_ms"),
                )
                .order_by("model", "task_type")
            )
        return response
