"""Decision buttons on admin object pages: submit, audit, approve, override... each a two-step
confirmation that records the reason, shown only to people the service would allow.

A ModelAdmin lists its decisions (``get_decisions``); each names the service call and a
test of whether the service would accept this person now (the services' own ``*_refusal``
helpers), so a button is never offered to someone who would be refused after confirming.
The service still decides: a refusal that comes anyway (the state changed meanwhile) is shown
as a message, never as an error page.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse


@dataclass(frozen=True)
class Decision:
    name: str  # in the URL: <pk>/decide/<name>/
    label: str
    perform: Callable[[Any, Any, str], Any]  # (request user, object, reason) -> anything
    allowed: Callable[[Any, Any], bool]  # (request user, object) -> would the service accept?
    reason_required: bool = False
    explanation: str = ""
    danger: bool = False


class DecisionsMixin:
    """For ModelAdmins: buttons above the change form, and the confirmation view behind them."""

    change_form_template = "admin/evalgate_change_form.html"

    def get_decisions(self, request: HttpRequest, obj: Any) -> list[Decision]:
        return []

    def allowed_decisions(self, request: HttpRequest, obj: Any) -> list[Decision]:
        return [d for d in self.get_decisions(request, obj) if d.allowed(request.user, obj)]

    def get_urls(self) -> list:
        opts = self.model._meta
        return [
            path(
                "<path:object_id>/decide/<slug:name>/",
                self.admin_site.admin_view(self.decide_view),
                name=f"{opts.app_label}_{opts.model_name}_decide",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ):
        obj = self.get_object(request, object_id)
        opts = self.model._meta
        decisions = []
        if obj is not None:
            decisions = [
                (d, reverse(f"admin:{opts.app_label}_{opts.model_name}_decide", args=[obj.pk, d.name]))
                for d in self.allowed_decisions(request, obj)
            ]
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "decisions": decisions}
        )

    def decide_view(self, request: HttpRequest, object_id: str, name: str) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_view_or_change_permission(request, obj):
            raise Http404
        decision = next((d for d in self.get_decisions(request, obj) if d.name == name), None)
        if decision is None:
            raise Http404
        opts = self.model._meta
        back = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        reason = request.POST.get("reason", "").strip()
        if request.method == "POST" and request.POST.get("confirmed") == "yes":
            if reason or not decision.reason_required:
                try:
                    decision.perform(request.user, obj, reason)
                except (ValidationError, PermissionDenied) as exc:
                    messages.error(request, "; ".join(getattr(exc, "messages", None) or [str(exc)]))
                else:
                    messages.success(request, f"{decision.label}: done for {obj}.")
                return HttpResponseRedirect(back)
            messages.error(request, "Please write a reason: it is recorded with the decision.")
        context = {
            **self.admin_site.each_context(request),
            "title": f"{decision.label}: {obj}",
            "object": obj,
            "decision": decision,
            "reason": reason,
            "back": back,
            "opts": opts,
            "allowed": decision.allowed(request.user, obj),
        }
        return TemplateResponse(request, "admin/evalgate_confirm_decision.html", context)


def actions_for(
    actions: dict[str, Any], allowed: dict[str, Callable[[Any], bool]], user: Any
) -> dict[str, Any]:
    """A changelist's actions without those this person could never take (ModelAdmin.get_actions)."""
    return {name: action for name, action in actions.items() if allowed.get(name, lambda u: True)(user)}
