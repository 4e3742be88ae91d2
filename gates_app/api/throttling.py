"""API rate limits per client: each token (or user, or address) gets its own budget.

The budgets live in the default cache, which is Redis when there is one, so they hold across
gunicorn workers and machines. When Redis cannot be reached the API still answers: the
counting falls back to this process's memory (per-process limits) and says so in the log,
because reads must never depend on Redis.
"""

import logging
import time
from typing import Any

from django.core.cache.backends.locmem import LocMemCache
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from gates_app.models import DeployToken

logger = logging.getLogger(__name__)
FALLBACK = LocMemCache("evalgate-throttle-fallback", {"MAX_ENTRIES": 100_000})
_warned_at = 0.0
WARN_EVERY_S = 60


def _cache_failed(exc: Exception) -> None:
    global _warned_at
    if time.monotonic() - _warned_at > WARN_EVERY_S:
        _warned_at = time.monotonic()
        logger.warning("rate limits counted per process: the shared cache is unreachable (%s)", exc)


class ResilientThrottle(SimpleRateThrottle):
    """A throttle that counts in this process when the shared cache fails."""

    def allow_request(self, request: Request, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # Redis down, timed out, or refusing: any cache failure
            _cache_failed(exc)
            self.cache = FALLBACK
            return super().allow_request(request, view)


class PerClientRateThrottle(ResilientThrottle):
    """``EVALGATE_API_RATE`` requests per client."""

    scope = "client"

    def get_cache_key(self, request: Request, view: Any) -> str:
        if isinstance(request.auth, DeployToken):
            ident = f"token:{request.auth.prefix}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"addr:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class FailedAuthThrottle(ResilientThrottle):
    """``EVALGATE_API_ANON_RATE`` requests without valid credentials per address.

    Those requests never reach the per-client throttle (authentication refuses them first),
    so the error handler counts them here: a flood of bad tokens gets 429, not a free 401.
    """

    scope = "anonymous"

    def get_rate(self) -> str:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope) or "120/min"

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
