"""Admin for gates and their rules: owners change them, everyone who may see them reads them."""

from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.safestring import SafeString

from evalproject.admin_actions import GovernedAdmin
from evalproject.charts import empty, render
from evalproject.owners import OwnerFieldAdmin
from gates_app import charts
from gates_app.choices import CheckStatus
from gates_app.models import Check, Gate, GateRule

HISTORY_CHECKS = 200  # how many of a gate's latest decided checks its charts draw


def owns(request: HttpRequest, gate: Gate | None) -> bool:
    """Only an owner (or a superuser) says what a gate's rules mean."""
    return gate is None or request.user.is_superuser or gate.is_owner(request.user)


RULE_FIELDS = [
    "stage",
    "position",
    "name",
    "metric",
    "grader",
    "scope",
    "mode",
    "threshold",
    "direction",
    "margin",
    "strict",
    "decide_on",
    "severity",
    "min_kappa",
    "min_labels",
]


class GateRuleForm(forms.ModelForm):
    """Compact widgets: the rule table stays as wide as the page, not three times wider."""

    class Meta:
        model = GateRule
        fields = RULE_FIELDS
        widgets = {
            "position": forms.NumberInput(attrs={"style": "width: 3.5em"}),
            "name": forms.TextInput(attrs={"size": 22}),
            "metric": forms.TextInput(attrs={"size": 14}),
            "scope": forms.Textarea(attrs={"rows": 1, "cols": 18}),
            "threshold": forms.NumberInput(attrs={"style": "width: 6em"}),
            "margin": forms.NumberInput(attrs={"style": "width: 5em"}),
            "min_kappa": forms.NumberInput(attrs={"style": "width: 5em"}),
            "min_labels": forms.NumberInput(attrs={"style": "width: 4.5em"}),
        }


class GateRuleInline(admin.StackedInline):
    """One rule per block, its fields on three lines: as wide as the page, not three pages."""

    model = GateRule
    form = GateRuleForm
    fieldsets = [
        (None, {"fields": [("position", "name", "severity", "stage"), ("metric", "grader", "scope")]}),
        (None, {"fields": [("mode", "threshold", "direction", "margin", "strict", "decide_on")]}),
        ("Judge calibration", {"classes": ["collapse"], "fields": [("min_kappa", "min_labels")]}),
    ]

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        # The add / change / view icons beside each rule's grader are noise here.
        widget = getattr(field, "widget", None)
        for flag in ("can_add_related", "can_change_related", "can_view_related", "can_delete_related"):
            if hasattr(widget, flag):
                setattr(widget, flag, False)
        return field

    def has_change_permission(self, request: HttpRequest, obj: Gate | None = None) -> bool:
        return owns(request, obj) and super().has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Gate | None = None) -> bool:
        return owns(request, obj) and super().has_add_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Gate | None = None) -> bool:
        return owns(request, obj) and super().has_delete_permission(request, obj)

    extra = 0


@admin.register(Gate)
class GateAdmin(OwnerFieldAdmin, GovernedAdmin):
    list_display = ["slug", "name", "owner", "dataset", "active"]
    list_select_related = ["owner", "dataset"]
    search_fields = ["slug", "name"]
    raw_id_fields = ["baseline_check"]
    owner_permission = "gates_app.change_gate"
    filter_horizontal = ["co_owners", "approvers", "sources"]
    inlines = [GateRuleInline]
    chart_fields = ["verdict_history_chart", "rule_trends_chart"]

    def has_change_permission(self, request: HttpRequest, obj: Gate | None = None) -> bool:
        return owns(request, obj) and super().has_change_permission(request, obj)

    def get_form(self, request: HttpRequest, obj: Gate | None = None, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, **kwargs)
        if request.user.is_superuser or obj is not None:
            return form_class

        class OwnedGateForm(form_class):
            def clean(self) -> dict[str, Any]:
                data = super().clean()
                # A gate makes its owners answer for releases: nobody creates one in other
                # people's names only (superusers excepted).
                owners = {
                    getattr(data.get("owner"), "pk", None),
                    *(u.pk for u in data.get("co_owners") or []),
                }
                if request.user.pk not in owners:
                    self.add_error("owner", "Be an owner (owner or co-owner) of the gate you create.")
                return data

        return OwnedGateForm

    def get_readonly_fields(self, request: HttpRequest, obj: Gate | None = None) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))
        # Anyone who may view the gate sees its history (the page is read-only for non-owners),
        # as long as they may see checks at all; nothing to draw on the add page.
        if obj is not None and request.user.has_perm("gates_app.view_check"):
            readonly += self.chart_fields
        return readonly

    def _recent_checks(self, obj: Gate) -> list[tuple[datetime, str, str, list[dict[str, Any]]]]:
        """The latest decided checks, oldest first, read once for both charts of the page."""
        if not hasattr(obj, "_chart_checks"):
            rows = (
                Check.objects.filter(gate=obj, status=CheckStatus.DONE)
                .order_by("-created_at", "-pk")
                .values_list("created_at", "verdict", "candidate", "rule_results")[:HISTORY_CHECKS]
            )
            obj._chart_checks = list(reversed(rows))
        return obj._chart_checks

    @admin.display(description="Verdict history")
    def verdict_history_chart(self, obj: Gate) -> SafeString:
        checks = self._recent_checks(obj)
        if not checks:
            return empty("No decided checks yet.")
        return render(charts.verdict_history((c[0], c[1], c[2]) for c in checks))

    @admin.display(description="Rule trends")
    def rule_trends_chart(self, obj: Gate) -> SafeString:
        checks = self._recent_checks(obj)
        points = [(c[0], r["name"], r.get("value")) for c in checks for r in c[3]]
        if not points:
            return empty("No rule results yet.")
        # The latest check's metric names the unit, should a rule have changed metric since.
        metric_of = {r["name"]: r["metric"] for c in checks for r in c[3]}
        return render(charts.rule_trends(points, metric_of=metric_of))


@admin.register(GateRule)
class GateRuleAdmin(GovernedAdmin):
    list_display = ["name", "gate", "metric", "severity", "mode", "threshold"]
    list_filter = ["gate", "severity", "metric"]
    list_select_related = ["gate"]

    def has_change_permission(self, request: HttpRequest, obj: GateRule | None = None) -> bool:
        return owns(request, obj.gate if obj else None) and super().has_change_permission(request, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        # A rule may only be added to (or moved onto) a gate the user owns.
        if db_field.name == "gate" and not request.user.is_superuser:
            kwargs["queryset"] = Gate.objects.owned_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
