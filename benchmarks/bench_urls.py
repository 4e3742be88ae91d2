"""Benchmark-only routes: the project's own, plus /bench/ping/, the cheapest DRF view possible,
/bench/ping-io/, the same with the two round trips an authenticated, rate-limited request made
here before answers were kept in memory (a prepared indexed query on PostgreSQL, one script call
on Redis), and /bench/ping-redis/, the same with the Redis call only.

api_latency.py compares the verdict API with both on the same server: whatever ping costs is
the floor set by gunicorn, Django and DRF; ping-io adds what a shared database and a shared
rate-limit counter cost, whatever code sits around them.
"""

from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class Ping(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class PingIO(Ping):
    """Ping, plus a prepared query on the token table's prefix index and one Redis script."""

    def get(self, request: Request) -> Response:
        from django.core.cache import caches

        from evalproject.prepared import prepared_cursor
        from gates_app.api.throttling import _count_script

        with prepared_cursor() as cursor:
            cursor.execute("SELECT id FROM gates_app_deploytoken WHERE prefix = %s", ["bench"])
            cursor.fetchone()
        client = caches["default"]._cache.get_client("bench", write=True)
        _count_script(client)(keys=["bench:ping-io:1", "bench:ping-io:0"], args=[121, 1], client=client)
        return Response({"ok": True})


class PingRedis(Ping):
    """Ping, plus the throttle's Redis script: what one round trip per request costs."""

    def get(self, request: Request) -> Response:
        from django.core.cache import caches

        from gates_app.api.throttling import _count_script

        client = caches["default"]._cache.get_client("bench", write=True)
        _count_script(client)(keys=["bench:ping-io:1", "bench:ping-io:0"], args=[121, 1], client=client)
        return Response({"ok": True})


urlpatterns = [
    path("bench/ping-redis/", PingRedis.as_view()),
    path("bench/ping/", Ping.as_view()),
    path("bench/ping-io/", PingIO.as_view()),
    path("", include("evalproject.urls")),
]
