"""The "Waiting for me" page of the admin: every decision waiting for this person, linked."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from gates_app.waiting import waiting_for


def waiting_view(request: HttpRequest) -> HttpResponse:
    sections = waiting_for(request.user)
    context = {
        **admin.site.each_context(request),
        "title": "Waiting for me",
        "sections": sections,
        "total": sum(section.count for section in sections),
    }
    return TemplateResponse(request, "admin/gates_app/waiting.html", context)
