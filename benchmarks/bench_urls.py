"""Benchmark-only routes: the project's own, plus /bench/ping/, the cheapest DRF view possible.

api_latency.py compares the verdict API with it on the same server: whatever ping costs is
the floor set by gunicorn, Django and DRF, not by Evalgate.
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


urlpatterns = [
    path("bench/ping/", Ping.as_view()),
    path("", include("evalproject.urls")),
]
