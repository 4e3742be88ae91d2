"""Issue 12: liveness, readiness, and an API that reads without Redis.

A closed port stands in for a Redis that went away (connection refused at once); the
integration tests stop a real one (tests/integration/test_without_redis.py).
"""

import logging

import pytest
from django.core.cache import caches

from gates_app.api import throttling
from gates_app.services import request_check
from tests.factories import make_scenario, make_token, outputs_for

pytestmark = pytest.mark.django_db
GONE = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def test_healthz_is_liveness_and_readyz_reports_each_dependency(client, settings):
    settings.REDIS_URL = ""
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "database": "ok",
        "redis": "not configured (jobs run in-process)",
    }

    settings.REDIS_URL = GONE
    unavailable = client.get("/readyz")
    assert unavailable.status_code == 503
    body = unavailable.json()
    assert (body["status"], body["database"]) == ("unavailable", "ok")
    assert body["redis"].startswith("error: ConnectionError")
    assert client.get("/healthz").status_code == 200  # the process is alive: do not restart it


def test_the_api_reads_with_per_process_limits_when_the_shared_cache_is_gone(
    api_client, settings, caplog, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(throttling, "_warned_at", 0.0)  # the warning is rate-limited per process
    s = make_scenario()
    with django_capture_on_commit_callbacks(execute=True):
        check, _ = request_check(gate=s["gate"], candidate="v1", outputs=outputs_for(s["cases"]))
    secret = make_token([s["gate"]])
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": GONE,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    from rest_framework.throttling import SimpleRateThrottle

    caches._settings = None
    original = SimpleRateThrottle.cache
    SimpleRateThrottle.cache = caches["default"]
    try:
        with caplog.at_level(logging.WARNING, logger="gates_app.api.throttling"):
            detail = api_client.get(f"/api/v1/checks/{check.pk}/", HTTP_AUTHORIZATION=f"Bearer {secret}")
            verdict = api_client.get(
                f"/api/v1/gates/{s['gate'].slug}/verdict/?candidate=v1", HTTP_AUTHORIZATION=f"Bearer {secret}"
            )
    finally:
        SimpleRateThrottle.cache = original
    assert (detail.status_code, verdict.status_code) == (200, 200)
    assert detail.json()["verdict"] == verdict.json()["verdict"] == "pass"
    assert "rate limits counted per process" in caplog.text
