"""Admin pages of Observer: approvals with their history, decision buttons and bulk decisions.

Everything an agent sent is read-only here. Decisions go through ``observer.decisions`` like the
Observer pages, so they need the ``decide_approval`` permission, record the signed-in user, write
history and reply to the agent in one transaction.
"""
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from . import decisions
from .forms import MAX_REASON_LENGTH, DecisionForm
from .models import DECIDE_PERMISSION, Approval, ApprovalHistory

DIFF_LINE_CLASSES = (("+++", "diff-file"), ("---", "diff-file"), ("@@", "diff-hunk"), ("+", "diff-add"), ("-", "diff-del"))
DIFF_STYLE = {
    "diff-add": "color:#1a7f37;background:#e6ffec",
    "diff-del": "color:#b3261e;background:#ffebe9",
    "diff-hunk": "color:#6f42c1",
    "diff-file": "font-weight:bold",
    "diff-context": "",
}


class ApprovalHistoryInline(admin.TabularInline):
    model = ApprovalHistory
    extra = 0
    can_delete = False
    fields = ["created_at", "actor", "from_status", "to_status", "reason"]
    readonly_fields = fields
    ordering = ["created_at", "id"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Approval)
class ApprovalAdmin(admin.ModelAdmin):
    list_display = ["request_id", "type", "agent_id", "task_type", "summary_short", "status", "decided_by", "expires_at", "created_at"]
    list_filter = ["status", "type", "agent_id", "task_type", "created_at"]
    search_fields = ["request_id", "agent_id"]
    list_select_related = ["decided_by"]
    date_hierarchy = "created_at"
    inlines = [ApprovalHistoryInline]
    actions = ["approve_selected", "reject_selected", "cancel_selected"]
    change_form_template = "admin/observer/approval/change_form.html"
    fieldsets = [
        ("Request", {"fields": ["request_id", "type", "agent_id", "task_type", "summary", "created_at", "expires_at", "reply_to"]}),
        ("What the agent sent", {"fields": ["question_display", "diff_display", "payload_display", "metadata_display"]}),
        ("Decision", {"fields": ["status", "decided_by", "decided_at", "decision_reason", "answer", "updated_at"]}),
    ]
    readonly_fields = [
        "request_id", "type", "agent_id", "task_type", "summary", "created_at", "expires_at", "reply_to",
        "question_display", "diff_display", "payload_display", "metadata_display",
        "status", "decided_by", "decided_at", "decision_reason", "answer", "updated_at",
    ]

    # --- permissions --------------------------------------------------------------------------

    def has_add_permission(self, request):
        return False  # Approvals come only from agents, through the queue.

    def has_change_permission(self, request, obj=None):
        return False  # Nothing is edited by hand; decisions use the buttons and actions below.

    def has_delete_permission(self, request, obj=None):
        return False  # The record of what was asked and decided is kept.

    def has_decide_permission(self, request, obj=None):
        return request.user.has_perm(DECIDE_PERMISSION)

    # --- display ------------------------------------------------------------------------------

    @admin.display(description="summary")
    def summary_short(self, obj):
        return (obj.summary[:80] + "…") if len(obj.summary) > 80 else obj.summary

    @admin.display(description="question")
    def question_display(self, obj):
        return obj.question or "-"

    @admin.display(description="payload")
    def payload_display(self, obj):
        return format_html('<pre style="white-space:pre-wrap;max-height:30em;overflow:auto">{}</pre>', obj.payload_json)

    @admin.display(description="metadata")
    def metadata_display(self, obj):
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', obj.metadata_json)

    @admin.display(description="diff")
    def diff_display(self, obj):
        if not obj.diff:
            return "-"
        lines = format_html_join(
            "\n", '<span style="{}">{}</span>', ((DIFF_STYLE[_diff_class(line)], line) for line in obj.diff.splitlines())
        )
        return format_html('<pre style="max-height:30em;overflow:auto">{}</pre>', lines)

    # --- expire on read -----------------------------------------------------------------------

    def changelist_view(self, request, extra_context=None):
        decisions.expire_due()
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        approval = Approval.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if approval is not None and approval.is_pending and approval.is_past_expiry():
            decisions.expire(approval.pk)
            approval.refresh_from_db()
        extra_context = {
            **(extra_context or {}),
            "can_decide": approval is not None and approval.is_pending and self.has_decide_permission(request),
            "decide_url": reverse("admin:observer_approval_decide", args=[object_id]) if approval else "",
            "approval": approval,
            "max_reason_length": MAX_REASON_LENGTH,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # --- decision buttons on the change page --------------------------------------------------

    def get_urls(self):
        custom = [
            path(
                "<int:object_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="observer_approval_decide",
            ),
        ]
        return custom + super().get_urls()

    def decide_view(self, request, object_id):
        return _decide_view(self, request, object_id)

    # --- bulk actions -------------------------------------------------------------------------

    @admin.action(permissions=["decide"], description="Approve selected requests")
    def approve_selected(self, request, queryset):
        return self._bulk_decide(request, queryset, decisions.APPROVE)

    @admin.action(permissions=["decide"], description="Reject selected requests")
    def reject_selected(self, request, queryset):
        return self._bulk_decide(request, queryset, decisions.REJECT)

    @admin.action(permissions=["decide"], description="Cancel selected requests")
    def cancel_selected(self, request, queryset):
        return self._bulk_decide(request, queryset, decisions.CANCEL)

    def _bulk_decide(self, request, queryset, action):
        """Ask for confirmation first; on the confirmed post, decide each and report the outcome."""
        approvals = list(queryset.select_related("decided_by").order_by("created_at"))
        if request.POST.get("post") != "yes":
            return self._confirmation_page(request, approvals, action)

        reason = request.POST.get("reason", "").strip()[:MAX_REASON_LENGTH]
        done, skipped = [], []
        for approval in approvals:
            try:
                decisions.decide(approval.pk, action, request.user, reason=reason)
            except (decisions.AlreadyDecided, decisions.InvalidDecision, decisions.ApprovalNotFound) as exc:
                skipped.append(str(exc))
            else:
                done.append(str(approval.request_id))

        if done:
            self.message_user(
                request,
                f"{action.status.capitalize()} {len(done)} request(s): {', '.join(done)}. The decisions were sent to their agents.",
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(request, f"Skipped {len(skipped)}: {' '.join(skipped)}", messages.WARNING)
        if not done and not skipped:
            self.message_user(request, "No requests were selected; nothing changed.", messages.WARNING)
        return None

    def _confirmation_page(self, request, approvals, action):
        decidable = [a for a in approvals if a.is_pending and a.type in action.types]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Are you sure you want to {action.verb} these requests?",
            "opts": self.model._meta,
            "action_name": request.POST.get("action"),
            "action_verb": action.verb,
            "decidable": decidable,
            "skipped": [a for a in approvals if a not in decidable],
            "queryset": approvals,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "max_reason_length": MAX_REASON_LENGTH,
        }
        return TemplateResponse(request, "admin/observer/approval/decision_confirmation.html", context)


def _decide_view(model_admin: ApprovalAdmin, request, object_id: int):
    """Apply a decision posted from the change page and return to it with a message about the outcome."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not model_admin.has_decide_permission(request):
        raise PermissionDenied("Only approvers may decide; ask an administrator to add you to the Approvers group.")
    approval = get_object_or_404(Approval, pk=object_id)
    change_url = reverse("admin:observer_approval_change", args=[approval.pk])
    form = DecisionForm(request.POST)
    if not form.is_valid():
        model_admin.message_user(request, f"The decision was not submitted: {form.errors.as_text()}", messages.ERROR)
        return redirect(change_url)
    try:
        decided = decisions.decide(
            approval.pk,
            form.chosen_action,
            request.user,
            reason=form.cleaned_data["reason"],
            answer=form.cleaned_data["answer"],
        )
    except decisions.AlreadyDecided as exc:
        model_admin.message_user(request, str(exc), messages.WARNING)
    except decisions.InvalidDecision as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
    else:
        model_admin.message_user(
            request, f"{decided.get_status_display()}: {decided.request_id}. The decision was sent to the agent.", messages.SUCCESS
        )
    return redirect(change_url)


def _diff_class(line: str) -> str:
    for prefix, css_class in DIFF_LINE_CLASSES:
        if line.startswith(prefix):
            return css_class
    return "diff-context"


@admin.register(ApprovalHistory)
class ApprovalHistoryAdmin(admin.ModelAdmin):
    """Read-only: history rows are written by decisions only."""

    list_display = ["approval", "from_status", "to_status", "actor", "created_at"]
    list_filter = ["to_status", "created_at"]
    search_fields = ["approval__request_id", "approval__agent_id"]
    list_select_related = ["approval", "actor"]
    readonly_fields = ["approval", "from_status", "to_status", "actor", "reason", "created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
