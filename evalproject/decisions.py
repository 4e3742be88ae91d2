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


def refusal_text(refusal: Any) -> str:
    """A service's refusal (an exception, a message, or None / "" for none) as a sentence."""
    if not refusal:
        return ""
    if isinstance(refusal, Exception):
        return "; ".join(getattr(refusal, "messages", None) or [str(refusal)])
    return str(refusal)


@dataclass(frozen=True)
class Decision:
    name: str  # in the URL: <pk>/decide/<name>/
    label: str
    perform: Callable[[Any, Any, str], Any]  # (request user, object, reason) -> anything
    # (request user, object) -> would the service accept? Without it: whether ``why`` is empty.
    allowed: Callable[[Any, Any], bool] | None = None
    reason_required: bool = False
    explanation: str = ""
    danger: bool = False
    # (request user, object) -> the service's own refusal (exception, text, None): said on the
    # confirmation page of someone who opened it anyway, instead of "confirming will show why".
    why: Callable[[Any, Any], Any] | None = None
    # perform's result -> the object whose page to show next (a new draft, say), else None: back.
    goto: Callable[[Any], Any] | None = None

    def refusal(self, user: Any, obj: Any) -> str:
        return refusal_text(self.why(user, obj)) if self.why else ""

    def is_allowed(self, user: Any, obj: Any) -> bool:
        if self.allowed is not None:
            return self.allowed(user, obj)
        return not self.refusal(user, obj)


class DecisionsMixin:
    """For ModelAdmins: buttons above the change form, and the confirmation view behind them."""

    change_form_template = "admin/evalgate_change_form.html"

    def get_decisions(self, request: HttpRequest, obj: Any) -> list[Decision]:
        return []

    def allowed_decisions(self, request: HttpRequest, obj: Any) -> list[Decision]:
        return [d for d in self.get_decisions(request, obj) if d.is_allowed(request.user, obj)]

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
                    result = decision.perform(request.user, obj, reason)
                except (ValidationError, PermissionDenied) as exc:
                    messages.error(request, "; ".join(getattr(exc, "messages", None) or [str(exc)]))
                else:
                    target = decision.goto(result) if decision.goto else None
                    if target is not None:
                        t = target._meta
                        back = reverse(f"admin:{t.app_label}_{t.model_name}_change", args=[target.pk])
                        messages.success(request, f"{decision.label}: done for {obj}; this is {target}.")
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
        }
        context["allowed"] = decision.is_allowed(request.user, obj)
        context["refusal"] = "" if context["allowed"] else decision.refusal(request.user, obj)
        return TemplateResponse(request, "admin/evalgate_confirm_decision.html", context)


def actions_for(
    actions: dict[str, Any], allowed: dict[str, Callable[[Any], bool]], user: Any
) -> dict[str, Any]:
    """A changelist's actions without those this person could never take (ModelAdmin.get_actions)."""
    return {name: action for name, action in actions.items() if allowed.get(name, lambda u: True)(user)}
