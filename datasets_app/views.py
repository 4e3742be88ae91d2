"""Custom admin views of datasets_app (registered by its ModelAdmins through get_urls)."""

import base64
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from datasets_app import services
from datasets_app.forms import ImportForm, IncidentConvertForm
from datasets_app.importers import ImportFailed, parse_cases
from datasets_app.models import Dataset, FailureClass, Incident

PREVIEW_ROWS = 50


def _render(
    model_admin: admin.ModelAdmin, request: HttpRequest, template: str, **context: Any
) -> TemplateResponse:
    context = {**model_admin.admin_site.each_context(request), "opts": model_admin.model._meta, **context}
    return TemplateResponse(request, template, context)


def import_cases_view(model_admin: admin.ModelAdmin, request: HttpRequest, dataset: Dataset) -> HttpResponse:
    """Upload -> preview (every error, or the first rows) -> confirm -> one all-or-nothing write.

    The preview carries the file back base64-encoded in the form, so the confirming POST
    can land on any web server.
    """
    if not request.user.has_perm("datasets_app.import_cases"):
        raise PermissionDenied
    form = ImportForm(request.POST or None, request.FILES or None)
    context: dict[str, Any] = {"dataset": dataset, "form": form, "title": f"Import cases into {dataset.name}"}
    if request.method != "POST":
        return _render(model_admin, request, "admin/datasets_app/import_cases.html", **context)
    raw = _uploaded_bytes(request)
    if raw is None:
        if not form.is_valid():
            return _render(model_admin, request, "admin/datasets_app/import_cases.html", **context)
        raw = form.cleaned_data["file"].read()
    options = {
        "fmt": request.POST.get("format", "jsonl"),
        "input_field": request.POST.get("input_field") or "input",
        "ideal_field": request.POST.get("ideal_field") or "ideal",
    }
    failure_class = FailureClass.objects.filter(pk=request.POST.get("failure_class") or None).first()
    context.update(options=options, failure_class=failure_class, payload=base64.b64encode(raw).decode())
    try:
        specs = parse_cases(
            raw, options["fmt"], input_field=options["input_field"], ideal_field=options["ideal_field"]
        )
        # The preview shows database conflicts too (existing keys, unknown classes), not
        # only the file's own errors, so confirming never meets a surprise.
        conflicts = services.check_import(dataset, specs, actor=request.user)
        if conflicts:
            raise ImportFailed(conflicts)
        if request.POST.get("confirmed") == "yes":
            created = services.import_cases(dataset, specs, actor=request.user, failure_class=failure_class)
            messages.success(request, f"Imported {len(created)} case(s) into {dataset.name}.")
            return redirect("admin:datasets_app_dataset_change", dataset.pk)
    except ImportFailed as exc:
        context["errors"] = exc.errors
        return _render(model_admin, request, "admin/datasets_app/import_cases.html", **context)
    except (ValidationError, PermissionDenied) as exc:
        context["errors"] = [getattr(exc, "messages", [str(exc)])[0]]
        return _render(model_admin, request, "admin/datasets_app/import_cases.html", **context)
    context.update(preview=specs[:PREVIEW_ROWS], total=len(specs))
    return _render(model_admin, request, "admin/datasets_app/import_cases.html", **context)


def _uploaded_bytes(request: HttpRequest) -> bytes | None:
    payload = request.POST.get("payload")
    if not payload:
        return None
    try:
        return base64.b64decode(payload.encode(), validate=True)
    except ValueError:
        return None


def convert_incident_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, incident: Incident
) -> HttpResponse:
    """Choose the dataset, failure class, key and expected behaviour of the regression case."""
    if not request.user.has_perm("datasets_app.triage_incident"):
        raise PermissionDenied
    form = IncidentConvertForm(request.POST or None, incident=incident)
    if request.method == "POST" and form.is_valid():
        try:
            case = services.convert_incident(
                incident,
                actor=request.user,
                dataset=form.cleaned_data["dataset"],
                failure_class=form.cleaned_data["failure_class"],
                key=form.cleaned_data["key"],
                expected=form.cleaned_data["expected"] or {},
            )
        except ValidationError as exc:
            for field, problems in (
                exc.message_dict.items() if hasattr(exc, "error_dict") else [(None, exc.messages)]
            ):
                form.add_error(field if field in form.fields else None, problems)
        else:
            messages.success(
                request, f"Created pinned draft case {case.key}; submit it for review to make it count."
            )
            return redirect("admin:datasets_app_case_change", case.pk)
    return _render(
        model_admin,
        request,
        "admin/datasets_app/convert_incident.html",
        incident=incident,
        form=form,
        title=f"Convert incident: {incident.title}",
    )
