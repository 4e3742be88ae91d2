"""The API's one error shape: {"error": {"code", "message", "details"}}."""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from gates_app.api.parsers import RequestTooLarge, request_limit
from gates_app.api.throttling import FailedAuthThrottle
from gates_app.services import IdempotencyConflict, IdempotencyInFlight
from gates_app.uploads import PageConflict

CODES = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "in_flight",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "idempotency_key_reused",
    429: "throttled",
}


def error_response(status_code: int, message: str, details: Any = None, code: str = "") -> Response:
    body = {
        "error": {
            "code": code or CODES.get(status_code, "error"),
            "message": message,
            "details": details or {},
        }
    }
    return Response(body, status=status_code)


@csrf_exempt  # an error answer, nothing to protect: CSRF's HTML 403 would hide the 404
def unknown_endpoint(request: HttpRequest, path: str = "") -> JsonResponse:
    """Any other URL under the API (a typo, ``checks/abc/``) answers in the error shape, not HTML."""
    body = {"error": {"code": CODES[404], "message": "No such API endpoint.", "details": {}}}
    return JsonResponse(body, status=404)


def _django_validation_details(exc: DjangoValidationError) -> dict[str, Any]:
    if hasattr(exc, "error_dict"):
        return {field: [str(m) for m in messages] for field, messages in exc.message_dict.items()}
    return {"non_field_errors": [str(m) for m in exc.messages]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Translate every API error, DRF's or our services', into the documented shape."""
    if isinstance(exc, RequestTooLarge | RequestDataTooBig):
        limit = request_limit()
        return error_response(
            413, str(RequestTooLarge(limit).detail), {"limit_bytes": limit}, "request_too_large"
        )
    if isinstance(exc, DjangoValidationError):
        # A refusal not tied to a field ("already approved") is the message itself.
        message = "Invalid input." if hasattr(exc, "error_dict") else " ".join(exc.messages)
        return error_response(400, message, _django_validation_details(exc))
    if isinstance(exc, DjangoPermissionDenied):
        return error_response(403, str(exc) or "Not allowed.")
    if isinstance(exc, IdempotencyConflict):
        return error_response(
            422,
            "This Idempotency-Key was already used with a different request body.",
            {"idempotency_key": str(exc)},
        )
    if isinstance(exc, PageConflict):
        return error_response(
            422,
            f"Page {exc} was already received with other outputs: pages are never replaced.",
            {"page": exc.args[0]},
            "page_conflict",
        )
    if isinstance(exc, IdempotencyInFlight):
        return error_response(
            409,
            "A request with this Idempotency-Key is still being processed; retry later.",
            {"idempotency_key": str(exc)},
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed) and context.get(
        "request"
    ):
        throttle = FailedAuthThrottle()
        if not throttle.allow_request(context["request"], context.get("view")):
            exc = exceptions.Throttled(throttle.wait())
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: let Django turn it into a 500 and log it
    if isinstance(exc, exceptions.ValidationError):
        message, details = "Invalid input.", exc.detail
    elif isinstance(exc, exceptions.ParseError):
        message, details = f"Malformed request body: {exc.detail}", {}
    else:
        message, details = str(getattr(exc, "detail", "")) or "Error.", {}
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        details = {"retry_after_s": int(exc.wait)}
    code = "malformed_json" if isinstance(exc, exceptions.ParseError) else ""
    error = error_response(response.status_code, message, details, code)
    for header in ("WWW-Authenticate", "Retry-After", "Allow"):
        if header in response:
            error[header] = response[header]
    return error
