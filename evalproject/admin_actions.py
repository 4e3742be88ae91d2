"""Two-step admin actions for irreversible decisions, in the manner of delete_selected.

The first POST shows what will happen to which objects and asks for a reason; the second
calls the service for each object, which records who did it and why.
"""

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from simple_history.admin import SimpleHistoryAdmin


class ReadOnlyInline(admin.TabularInline):
    """An inline of decided rows (chunks, decisions, versions): shown, never added or deleted here."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return list(self.fields or [])

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class GovernedAdmin(SimpleHistoryAdmin):
    """Admin of governed configuration: full history (with field deltas), no delete, no revert.

    simple_history's revert form saves a POSTed old version without asking for change
    permission and writes it back whole (status included), around the services that hold
    the rules; so past versions are for reading, and changes go through the change form.
    """

    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # Django 6's default, today

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # governed data is retired, closed or deactivated, never deleted

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        if request.method == "POST":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)

    def revert_disabled(self, request: HttpRequest, obj: Any = None) -> bool:
        return True


def run_each(request: HttpRequest, objects: Any, verb: str, perform: Callable[[Any], Any]) -> int:
    """Apply ``perform`` to each object; report refusals by name, successes by count."""
    done = 0
    for obj in objects:
        try:
            perform(obj)
            done += 1
        except (ValidationError, PermissionDenied) as exc:
            reason = "; ".join(getattr(exc, "messages", None) or [str(exc)])
            messages.error(request, f"{obj}: {reason}")
    if done:
        messages.success(request, f"{verb} {done} item(s).")
    return done


def confirm_action(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Model],
    *,
    title: str,
    verb: str,
    perform: Callable[[Any, str], Any],
    reason_required: bool = False,
    explanation: str = "",
) -> TemplateResponse | None:
    """Show a confirmation page; on confirmation, call ``perform(obj, reason)`` for each."""
    reason = request.POST.get("reason", "").strip()
    if request.POST.get("confirmed") == "yes":
        if reason or not reason_required:
            run_each(request, queryset, verb, lambda obj: perform(obj, reason))
            return None  # back to the changelist
        messages.error(request, "Please write a reason: it is recorded with the decision.")
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "objects": list(queryset),
        "action": request.POST.get("action", ""),
        "verb": verb,
        "explanation": explanation,
        "reason_required": reason_required,
        "reason": reason,
        "opts": modeladmin.model._meta,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/evalgate_confirm_action.html", context)
