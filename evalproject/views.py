"""Tiny project-level views: the landing redirect, liveness and readiness for load balancers."""

from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views import defaults

READY_TIMEOUT_S = 1.0


def home(request: HttpRequest) -> HttpResponse:
    return redirect("admin:index")


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers (restart it when this fails). Touches nothing else."""
    return JsonResponse({"status": "ok"})


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"[:300]
    return "ok"


def _redis() -> str:
    if not settings.REDIS_URL:
        return "not configured (jobs run in-process)"
    import redis

    client: Any = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=READY_TIMEOUT_S, socket_timeout=READY_TIMEOUT_S
    )
    try:
        client.ping()
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"[:300]
    finally:
        client.close()
    return "ok"


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database and Redis, each reported; 503 naming what is down.

    Reads of the API keep working without Redis (only new jobs wait for it), so a load
    balancer may keep sending reads to a 503 instance; deploy tooling should alert on it.
    """
    checks = {"database": _database(), "redis": _redis()}
    ready = all(not value.startswith("error") for value in checks.values())
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", **checks}, status=200 if ready else 503
    )


# Machine endpoints answer errors in the API's JSON shape, also when Django itself answers them
# before any view runs (a Host header not in ALLOWED_HOSTS) or after one crashed (a bug).
MACHINE_PATHS = ("/api/", "/otlp/")


def _machine(request: HttpRequest) -> bool:
    return request.path.startswith(MACHINE_PATHS)


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "details": {}}}, status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: a refused request (a disallowed Host, a malformed request line)."""
    if _machine(request):
        return _error(400, "invalid", "Bad request: the request was refused before it reached the API.")
    return defaults.bad_request(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: the error is logged with its traceback; the client gets the error shape."""
    if _machine(request):
        return _error(500, "server_error", "Internal error: it has been logged. Retrying may help.")
    return defaults.server_error(request)
