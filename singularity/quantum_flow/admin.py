"""Admin pages of quantum_flow: runs with their steps, steps with their attempts, and run actions.

Rows are written by the engine only, so every page is read-only. Users with the change permission on
runs may retry failed runs and cancel running ones, after a confirmation page.
"""
import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from .errors import RunStateError
from .models import FlowEvent, FlowRun, RunStatus, StepAttempt, StepState, StepStatus
from .runs import cancel_run, retry_run

CONFIRMATION_TEMPLATE = "admin/quantum_flow/run_action_confirmation.html"


def _pretty_json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


class EngineRowsAdmin(admin.ModelAdmin):
    """Rows only the engine writes: never added, edited or deleted by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # Django passes no object when it checks whether change actions may run. A single row stays read-only.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False


class StepStateInline(admin.TabularInline):
    model = StepState
    extra = 0
    can_delete = False
    fields = ["step_link", "status", "attempts", "waits_for", "output_display", "error", "queued_at", "started_at", "finished_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="step")
    def step_link(self, obj: StepState) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:quantum_flow_stepstate_change", args=[obj.pk]), obj.name)

    @admin.display(description="output")
    def output_display(self, obj: StepState) -> str:
        return format_html("<pre>{}</pre>", _pretty_json(obj.output)) if obj.output is not None else "-"

    @admin.display(description="waits for")
    def waits_for(self, obj: StepState) -> str:
        return _wait_text(obj)


def _wait_text(step: StepState) -> str:
    if not step.wait_event:
        return "-"
    if step.status != StepStatus.WAITING:
        # The record of a wait that is over: the event arrived, or the step failed or was cancelled.
        return f"{step.wait_event} {step.wait_key} ({step.get_status_display()})"
    deadline = f", until {step.wait_deadline:%Y-%m-%d %H:%M:%S %Z}" if step.wait_deadline else ""
    return f"{step.wait_event} {step.wait_key}{deadline}"


@admin.register(FlowRun)
class FlowRunAdmin(EngineRowsAdmin):
    list_display = ["id", "flow", "status", "failed_step", "created_at", "finished_at"]
    list_filter = ["flow", "status", "created_at"]
    search_fields = ["id", "flow", "failed_step"]
    readonly_fields = ["id", "flow", "status", "input_display", "remaining_steps", "error", "failed_step", "created_at", "updated_at", "finished_at"]
    exclude = ["input"]
    inlines = [StepStateInline]
    actions = ["retry_selected", "cancel_selected"]

    @admin.display(description="input")
    def input_display(self, obj: FlowRun) -> str:
        return format_html("<pre>{}</pre>", _pretty_json(obj.input))

    @admin.action(permissions=["change"], description="Retry selected failed runs from their failed step")
    def retry_selected(self, request, queryset: QuerySet):
        return self._confirm_and_apply(
            request,
            queryset,
            required_status=RunStatus.FAILED,
            action="retry_selected",
            title="Retry failed runs?",
            explanation="Each run below resumes from its failed step; completed steps keep their outputs.",
            confirm_label="Yes, retry them",
            apply=retry_run,
            done="Retried %(count)d run(s) from their failed step.",
        )

    @admin.action(permissions=["change"], description="Cancel selected running runs")
    def cancel_selected(self, request, queryset: QuerySet):
        return self._confirm_and_apply(
            request,
            queryset,
            required_status=RunStatus.RUNNING,
            action="cancel_selected",
            title="Cancel running runs?",
            explanation="Each run below stops: its unfinished steps are cancelled and start nothing new.",
            confirm_label="Yes, cancel them",
            apply=lambda run_id: cancel_run(run_id, reason=f"cancelled by {request.user.get_username()} in the admin"),
            done="Cancelled %(count)d run(s).",
        )

    def _confirm_and_apply(self, request, queryset, *, required_status, action, title, explanation, confirm_label, apply, done):
        eligible = queryset.filter(status=required_status)
        if not eligible.exists():
            self.message_user(request, f"None of the selected runs is {required_status}; nothing changed.", messages.WARNING)
            return None
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": title,
                "explanation": explanation,
                "confirm_label": confirm_label,
                "opts": self.model._meta,
                "runs": list(eligible),
                "skipped": queryset.count() - eligible.count(),
                "required_status": required_status,
                "selected_ids": [str(pk) for pk in queryset.values_list("pk", flat=True)],
                "action": action,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, CONFIRMATION_TEMPLATE, context)

        changed, refused = 0, []
        for run_id in eligible.values_list("pk", flat=True):
            try:
                apply(run_id)
                changed += 1
            except (RunStateError, LookupError) as exc:
                # The run changed status since the page was shown, or its flow is not loaded here.
                refused.append(str(exc))
        if changed:
            self.message_user(request, done % {"count": changed}, messages.SUCCESS)
        for reason in refused:
            self.message_user(request, reason, messages.ERROR)
        return None


class StepAttemptInline(admin.TabularInline):
    model = StepAttempt
    extra = 0
    can_delete = False
    fields = ["number", "status", "worker", "msg_id", "error", "retry_delay_s", "started_at", "finished_at", "duration_ms"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(StepState)
class StepStateAdmin(EngineRowsAdmin):
    list_display = ["name", "run", "status", "attempts", "queued_at", "finished_at"]
    list_filter = ["status", "run__flow", "name"]
    search_fields = ["run__id", "name"]
    readonly_fields = ["run", "name", "status", "depends_on", "remaining_deps", "attempts", "attempts_base", "task_msg_id", "waits_for", "output_display", "error", "queued_at", "started_at", "finished_at"]
    exclude = ["output", "wait_event", "wait_key", "wait_deadline"]
    inlines = [StepAttemptInline]

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="output")
    def output_display(self, obj: StepState) -> str:
        return format_html("<pre>{}</pre>", _pretty_json(obj.output))

    @admin.display(description="waits for")
    def waits_for(self, obj: StepState) -> str:
        return _wait_text(obj)


@admin.register(FlowEvent)
class FlowEventAdmin(EngineRowsAdmin):
    """Events delivered while no step waited for them, kept for a step that waits later.

    Operators with the delete permission may remove old ones; nothing removes them on its own.
    """

    list_display = ["event", "key", "received_at"]
    list_filter = ["event"]
    search_fields = ["event", "key"]
    readonly_fields = ["event", "key", "payload_display", "received_at"]
    exclude = ["payload"]

    def has_delete_permission(self, request, obj=None):
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    @admin.display(description="payload")
    def payload_display(self, obj: FlowEvent) -> str:
        return format_html("<pre>{}</pre>", _pretty_json(obj.payload))
