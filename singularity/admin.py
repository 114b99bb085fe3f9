"""Admin pages of the agents' side: LLM requests and results (read-only), pgmq queues and install record."""
from django.contrib import admin
from django.db.models.expressions import RawSQL

from .models import JobResult, LlmRequest, PgmqInstallation, Queue


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the system only: visible to staff, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class JobResultInline(admin.StackedInline):
    model = JobResult
    can_delete = False
    extra = 0
    readonly_fields = [field.name for field in JobResult._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(LlmRequest)
class LlmRequestAdmin(ReadOnlyAdmin):
    list_display = ["request_id", "agent_id", "task_type", "complexity", "status", "created_at"]
    list_filter = ["status", "task_type", "complexity", "created_at"]
    search_fields = ["request_id", "agent_id"]
    readonly_fields = [field.name for field in LlmRequest._meta.fields]
    inlines = [JobResultInline]


@admin.register(JobResult)
class JobResultAdmin(ReadOnlyAdmin):
    list_display = ["request", "status", "provider", "model", "total_tokens", "cost_usd", "latency_ms", "created_at"]
    list_filter = ["status", "provider", "model", "created_at"]
    search_fields = ["request__request_id", "model"]
    readonly_fields = [field.name for field in JobResult._meta.fields]


@admin.register(Queue)
class QueueAdmin(ReadOnlyAdmin):
    list_display = ["queue_name", "length", "visible", "oldest_age_s", "total_sent", "created_at"]

    def get_queryset(self, request):
        # pgmq.metrics() per row; the SQL has no parameters and names only pgmq.meta's own column.
        metrics = '(pgmq.metrics("pgmq"."meta"."queue_name"))'
        return (
            super()
            .get_queryset(request)
            .annotate(
                length=RawSQL(f"{metrics}.queue_length", []),
                visible=RawSQL(f"{metrics}.queue_visible_length", []),
                oldest_age_s=RawSQL(f"{metrics}.oldest_msg_age_sec", []),
                total_sent=RawSQL(f"{metrics}.total_messages", []),
            )
        )

    @admin.display(description="length")
    def length(self, obj):
        return obj.length

    @admin.display(description="visible")
    def visible(self, obj):
        return obj.visible

    @admin.display(description="oldest message age (s)")
    def oldest_age_s(self, obj):
        return obj.oldest_age_s

    @admin.display(description="total sent")
    def total_sent(self, obj):
        return obj.total_sent


@admin.register(PgmqInstallation)
class PgmqInstallationAdmin(ReadOnlyAdmin):
    list_display = ["version", "method", "installed_now", "recorded_at"]
