"""Admin pages of genesis: applied rules (with statistics and a retire action), incidents and samples."""
import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.template.response import TemplateResponse
from django.utils.html import format_html

from .models import AlertIncident, MonitorSample, QueueSample, Rule, RuleStatus
from .rules import CONFIDENCE_BANDS, retire_rules, rule_statistics


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the system only: visible to staff, never edited by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _pretty_json(value) -> str:
    return format_html('<pre style="margin:0">{}</pre>', json.dumps(value, indent=2, sort_keys=True))


class ConfidenceBandFilter(admin.SimpleListFilter):
    title = "confidence"
    parameter_name = "confidence_band"

    def lookups(self, request, model_admin):
        return [(str(index), label) for index, (label, _) in enumerate(CONFIDENCE_BANDS)]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        try:
            index = int(self.value())
        except ValueError:
            index = -1
        if not 0 <= index < len(CONFIDENCE_BANDS):
            return queryset.none()  # A hand-edited URL with no such band.
        upper = CONFIDENCE_BANDS[index][1]
        lower = CONFIDENCE_BANDS[index - 1][1] if index > 0 else None
        if lower is not None:
            queryset = queryset.filter(confidence__gte=lower)
        if upper is not None:
            queryset = queryset.filter(confidence__lt=upper)
        return queryset


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    """Rules arrive through genesis_rule_updates only; staff may read them and retire applied ones."""

    list_display = ["rule_id", "version", "namespace", "rule_type", "confidence", "source_instance", "status", "applied_at"]
    list_filter = ["status", "rule_type", ConfidenceBandFilter, "namespace", "source_instance"]
    search_fields = ["rule_id", "namespace", "source_instance"]
    date_hierarchy = "applied_at"
    actions = ["retire_selected"]
    change_list_template = "genesis/rule_change_list.html"
    fieldsets = [
        (None, {"fields": ["rule_id", "version", "status", "namespace", "rule_type", "confidence", "source_instance"]}),
        ("Rule", {"fields": ["pattern_display", "action_display"]}),
        (
            "History",
            {"fields": ["msg_id", "published_at", "applied_at", "superseded_at", "retired_at", "retired_by", "updated_at"]},
        ),
    ]
    readonly_fields = [
        "rule_id", "version", "status", "namespace", "rule_type", "confidence", "source_instance",
        "pattern_display", "action_display",
        "msg_id", "published_at", "applied_at", "superseded_at", "retired_at", "retired_by", "updated_at",
    ]  # fmt: skip

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting a version would let an older one be applied again; retire it instead.
        return False

    @admin.display(description="pattern")
    def pattern_display(self, obj: Rule) -> str:
        return _pretty_json(obj.pattern)

    @admin.display(description="action")
    def action_display(self, obj: Rule) -> str:
        return _pretty_json(obj.action)

    @admin.action(permissions=["change"], description="Retire selected applied rules")
    def retire_selected(self, request, queryset: QuerySet):
        applied = queryset.filter(status=RuleStatus.APPLIED)
        if not applied.exists():
            self.message_user(request, "None of the selected rules is applied; nothing changed.", messages.WARNING)
            return None
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Retire rules?",
                "opts": self.model._meta,
                "rules": list(applied),
                "skipped": queryset.count() - applied.count(),
                "selected_ids": [str(pk) for pk in queryset.values_list("pk", flat=True)],
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "genesis/retire_confirmation.html", context)
        retired = retire_rules(applied, retired_by=request.user.get_username())
        self.message_user(request, f"Retired {retired} rule(s); they no longer appear in get_rules().", messages.SUCCESS)
        return None

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "statistics": rule_statistics()}
        return super().changelist_view(request, extra_context=extra_context)


@admin.register(AlertIncident)
class AlertIncidentAdmin(ReadOnlyAdmin):
    list_display = ["alert", "subject", "severity", "status", "trigger_value", "peak_value", "threshold", "opened_at", "resolved_at"]
    list_filter = ["status", "alert", "severity", "opened_at"]
    search_fields = ["subject", "message"]
    readonly_fields = [field.name for field in AlertIncident._meta.fields if field.name != "trigger_values"] + ["values_display"]
    exclude = ["trigger_values"]

    @admin.display(description="values when opened")
    def values_display(self, obj: AlertIncident) -> str:
        return _pretty_json(obj.trigger_values)


class QueueSampleInline(admin.TabularInline):
    model = QueueSample
    extra = 0
    can_delete = False
    readonly_fields = [field.name for field in QueueSample._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(MonitorSample)
class MonitorSampleAdmin(ReadOnlyAdmin):
    list_display = ["sampled_at", "backlog_age_seconds", "apply_lag_seconds", "unacknowledged", "unacknowledged_overdue", "apply_failures"]
    date_hierarchy = "sampled_at"
    readonly_fields = [field.name for field in MonitorSample._meta.fields]
    inlines = [QueueSampleInline]
