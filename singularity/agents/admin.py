"""Read-only admin of agent runs, linked to their LLM requests, approvals and changes."""
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from .models import AgentRun


@admin.register(AgentRun)
class AgentRunAdmin(admin.ModelAdmin):
    list_display = ["run_id", "agent", "status", "step", "created_at", "finished_at"]
    list_filter = ["agent", "status", "step"]
    search_fields = ["run_id", "agent"]
    date_hierarchy = "created_at"
    fields = [
        "run_id", "agent", "status", "step", "input", "flow_run", "llm_requests", "approvals",
        "proposal", "outcome", "changes", "model_output", "decided_at", "finished_at", "created_at", "updated_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="LLM requests")
    def llm_requests(self, obj):
        from singularity.models import LlmRequest

        rows = LlmRequest.objects.filter(request_id__in=obj.llm_request_ids).order_by("created_at")
        return format_html_join(
            ", ",
            '<a href="{}">{}</a> ({})',
            ((reverse("admin:singularity_llmrequest_change", args=[row.pk]), row.request_id, row.status) for row in rows),
        ) or "-"

    @admin.display(description="Approvals and questions")
    def approvals(self, obj):
        # Observer's admin is searched by request_id, so the link needs no access to observer's tables.
        changelist = reverse("admin:observer_approval_changelist")
        return format_html_join(
            ", ", '<a href="{}?q={}">{}</a>', ((changelist, request_id, request_id) for request_id in obj.approval_request_ids)
        ) or "-"

    @admin.display(description="Flow run")
    def flow_run(self, obj):
        from singularity.quantum_flow.models import FlowRun, StepStatus

        run = FlowRun.objects.filter(pk=obj.run_id).first()
        if run is None:
            return "-"
        waiting = run.steps.filter(status=StepStatus.WAITING).first()
        detail = f"{run.status}, step {waiting.name} waiting for {waiting.wait_event} {waiting.wait_key}" if waiting else run.status
        return format_html('<a href="{}">{}</a> ({})', reverse("admin:quantum_flow_flowrun_change", args=[run.pk]), run.pk, detail)
