"""Tiny project-level views: the landing redirect, liveness and readiness for load balancers."""

from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect

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
