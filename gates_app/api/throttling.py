"""API rate limits per client: each token (or user, or address) gets its own budget."""

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from gates_app.models import DeployToken


class PerClientRateThrottle(SimpleRateThrottle):
    """``EVALGATE_API_RATE`` requests per client, counted in the default cache.

    With REDIS_URL the cache is Redis, so the budget holds across gunicorn workers and
    machines; in embedded mode it is per process.
    """

    scope = "client"

    def get_cache_key(self, request: Request, view: Any) -> str:
        if isinstance(request.auth, DeployToken):
            ident = f"token:{request.auth.prefix}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"addr:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
