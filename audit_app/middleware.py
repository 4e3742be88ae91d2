"""Names the path of each web request for the audit log ("admin POST /admin/...", "api ...")."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from audit_app.context import acting_via


class AuditContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        channel = "api" if request.path.startswith("/api/") else "web"
        with acting_via(f"{channel} {request.method} {request.path[:250]}", request=request):
            return self.get_response(request)
