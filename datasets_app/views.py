"""Custom admin views of datasets_app (registered by its ModelAdmins through get_urls)."""

import base64
import json
from collections import Counter
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from datasets_app import services
from datasets_app.choices import CaseStatus
from datasets_app.forms import ImportForm, IncidentConvertForm
from datasets_app.importers import CaseSpec, ImportFailed, read_cases
from datasets_app.models import UNCLASSIFIED, Dataset, FailureClass, Incident
from datasets_app.services.imports import imported_status, imported_status_note

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
    options = {name: request.POST.get(name, "") for name in ImportForm.OPTIONS}
    options["format"] = options["format"] or "jsonl"
    failure_class = FailureClass.objects.filter(pk=request.POST.get("failure_class") or None).first()
    if raw is None:
        if not form.is_valid():
            return _render(model_admin, request, "admin/datasets_app/import_cases.html", **context)
        raw = form.cleaned_data["file"].read()
    else:
        # The confirming POST carries no file: a fresh form to upload the fixed file into, not
        # one that says the file field is required.
        context["form"] = ImportForm(initial={**options, "failure_class": failure_class})
    context.update(options=options, failure_class=failure_class, payload=base64.b64encode(raw).decode())
    problem = _option_problem(options)
    if problem:  # only a hand-made POST gets here: the form offers nothing else
        context["errors"] = [problem]
        return _render(model_admin, request, "admin/datasets_app/import_cases.html", **context)
    parsed = read_cases(
        raw,
        options["format"],
        input_field=options["input_field"],
        ideal_field=options["ideal_field"],
        reference_as=options["reference_as"],
        eval_class=options["eval_class"],
        persona=options["persona"],
    )
    settings = services.ImportSettings(
        allow_lossy=bool(options["allow_lossy"]),
        judge_endpoint=options["judge_endpoint"] or None,
        judge_model=options["judge_model"] or None,
        gate=options["gate"] or None,
        embedding_endpoint=options["embedding_endpoint"] or None,
        embedding_model=options["embedding_model"] or None,
    )
    try:
        # One pass: the file's own errors and its conflicts with the database (existing keys,
        # unknown classes, statuses not allowed), every line at once, so no second upload
        # uncovers a new kind of problem and confirming never meets a surprise.
        errors = services.check_import(dataset, parsed, actor=request.user, settings=settings)
        if errors:
            raise ImportFailed(errors)
        if request.POST.get("confirmed") == "yes":
            created = services.import_cases(
                dataset, parsed, actor=request.user, failure_class=failure_class, settings=settings
            )
            messages.success(request, f"Imported {len(created)} case(s) into {dataset.name}.")
            if parsed.dropped:
                messages.warning(request, "Not carried: " + "; ".join(str(d) for d in parsed.dropped))
            return redirect("admin:datasets_app_dataset_change", dataset.pk)
    except ImportFailed as exc:
        context["errors"] = exc.errors
        return _render(model_admin, request, "admin/datasets_app/import_cases.html", **context)
    except (ValidationError, PermissionDenied) as exc:
        context["errors"] = [getattr(exc, "messages", [str(exc)])[0]]
        return _render(model_admin, request, "admin/datasets_app/import_cases.html", **context)
    context["dropped"] = parsed.dropped
    specs = parsed.specs
    arrivals = Counter(imported_status(spec) for spec in specs)
    context.update(
        preview=specs[:PREVIEW_ROWS],
        preview_rows=[_preview_row(spec, failure_class) for spec in specs[:PREVIEW_ROWS]],
        total=len(specs),
        arrivals=[(status, arrivals[status]) for status in CaseStatus.values if arrivals[status]],
    )
    return _render(model_admin, request, "admin/datasets_app/import_cases.html", **context)


def _option_problem(options: dict[str, str]) -> str:
    """What is wrong with a posted choice the form would never offer ("" when nothing)."""
    form = ImportForm()
    for name in ("format", "reference_as", "eval_class"):
        allowed = [value for value, _label in form.fields[name].choices]
        if options[name] not in allowed and not (name != "format" and not options[name]):
            choices = ", ".join(v for v in allowed if v)
            return f"unknown {name.replace('_', ' ')} {options[name]!r}; use one of: {choices}"
    return ""


def _preview_row(spec: CaseSpec, fallback: FailureClass | None) -> dict[str, Any]:
    """One case as it will arrive: its failure class and status once imported, its JSON as JSON."""
    return {
        "spec": spec,
        "failure_class": spec.failure_class or (fallback.slug if fallback else UNCLASSIFIED),
        "failure_class_given": bool(spec.failure_class),
        "status": imported_status(spec),
        "status_note": imported_status_note(spec),
        "input": _pretty_json(spec.input),
        "expected": _pretty_json(spec.expected),
    }


def _pretty_json(value: Any) -> str:
    # What the user wrote in the file is JSON, so show JSON (not a Python repr), indented.
    return json.dumps(value, indent=2, ensure_ascii=False)


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
