"""OpenAPI documentation of the API's error responses, so clients see every status they may get."""

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="Machine-readable: invalid, malformed_json, unauthenticated, forbidden, not_found, "
        "in_flight, idempotency_key_reused, throttled, ..."
    )
    message = serializers.CharField(help_text="For people: what went wrong and what to do.")
    details = serializers.DictField(
        help_text="For 400: each invalid field (e.g. cases[3].input) with its messages; "
        "for 429: retry_after_s; otherwise usually empty."
    )


class ErrorSerializer(serializers.Serializer):
    """The one error shape of the API (gates_app.api.errors)."""

    error = ErrorBodySerializer()


ERROR_DESCRIPTIONS = {
    400: "Invalid input, or a body that is not JSON.",
    401: "No valid credentials: a missing, malformed, expired or revoked token.",
    403: "Not allowed: the token lacks the scope, or the user lacks the permission.",
    404: "No such object among those the credentials can see.",
    409: "A request with the same Idempotency-Key is still being processed; retry later.",
    422: "The Idempotency-Key was already used with a different request body.",
    429: "Rate limited: retry after the Retry-After header's seconds.",
}


def error_responses(*extra: int) -> dict[int, OpenApiResponse]:
    """The errors every endpoint can answer (400, 401, 403, 404, 429), plus ``extra`` statuses."""
    statuses = sorted({400, 401, 403, 404, 429, *extra})
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code]) for code in statuses}
