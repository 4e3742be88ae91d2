"""API rate limits per client: each token (or user, or address) gets its own budget.

The budgets live in the default cache, which is Redis when there is one, so they hold across
gunicorn workers and machines. When Redis cannot be reached the API still answers: the
counting falls back to this process's memory (per-process limits) and says so in the log,
because reads must never depend on Redis.
"""

import logging
import math
import threading
import time
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache import cache as default_cache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from gates_app.models import DeployToken

logger = logging.getLogger(__name__)
FALLBACK = LocMemCache("evalgate-throttle-fallback", {"MAX_ENTRIES": 100_000})
_warned_at = 0.0
WARN_EVERY_S = 60
# KEYS: this window's counter, the previous window's; ARGV: the counters' time to live (s).
COUNT_SCRIPT = """
local current = redis.call('INCRBY', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return {current, redis.call('GET', KEYS[2])}
"""


_script: Any = None
# Requests a process counts in Redis at once for a client far from its limit, then lets through
# without a round trip (a lease): at most LEASE_MAX, and none for budgets under 64 a period.
LEASE_MAX = 8
LEASE_SHARE = 32
_leases: dict[str, tuple[str, int]] = {}  # client key -> (window key, requests left of its lease)
_leases_lock = threading.Lock()  # gthread workers serve requests from several threads
LEASES_KEPT = 10_000


def _count_script(client: Any) -> Any:
    """COUNT_SCRIPT as a redis-py Script, its digest computed once per process; the client it is
    first registered with does not matter: each call names the client it runs on."""
    global _script
    if _script is None:
        _script = client.register_script(COUNT_SCRIPT)
    return _script


def _cache_failed(exc: Exception) -> None:
    global _warned_at
    if time.monotonic() - _warned_at > WARN_EVERY_S:
        _warned_at = time.monotonic()
        logger.warning("rate limits counted per process: the shared cache is unreachable (%s)", exc)


class ResilientThrottle(SimpleRateThrottle):
    """``num_requests`` per ``duration`` by a sliding-window counter: a count per window of the
    period, the previous window's weighted by how much of it still overlaps the last period.
    One round trip to Redis (INCRBY, EXPIRE and GET in one script; a DECRBY only when refusing,
    so refused requests do not count), where DRF's own throttle reads and writes a pickled list
    of every timestamp. Counts in this process when the shared cache fails.

    A client far from its limit is counted ``lease`` requests at a time: the process adds them
    to the shared count in one round trip and lets the next ``lease - 1`` of that client's
    requests through in the same window without one. Requests are counted before they are
    served, so no client ever gets more than its budget; a lease left unused when its window
    ends stays counted, so a client spread over P processes may be refused up to P x (lease -
    1) requests early (near its limit, requests are counted one at a time again)."""

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window, into = divmod(self.now, self.duration)
        current_key = f"{self.key}:{int(window)}"
        previous_key = f"{self.key}:{int(window) - 1}"
        if self._leased(current_key):
            return True
        lease = min(LEASE_MAX, self.num_requests // LEASE_SHARE)
        overlap = 1 - into / self.duration
        try:
            if lease > 1:
                current, previous = self._count(self.cache, current_key, previous_key, lease)
                if previous * overlap + current <= self.num_requests:
                    self._lease(current_key, lease - 1)
                    return True
                self.cache.decr(current_key, lease)  # too near the limit: one at a time
            current, previous = self._count(self.cache, current_key, previous_key, 1)
        except Exception as exc:  # Redis down, timed out, or refusing: any cache failure
            _cache_failed(exc)
            self.cache = FALLBACK
            current, previous = self._count(self.cache, current_key, previous_key, 1)
        if previous * overlap + current > self.num_requests:
            self._refused(current, previous, into)
            try:
                self.cache.decr(current_key)
            except Exception as exc:
                _cache_failed(exc)
            return False
        return True

    def _leased(self, current_key: str) -> bool:
        """Whether this request is one this process has already counted (a lease of this window)."""
        with _leases_lock:
            held = _leases.get(self.key)
            if held is None or held[0] != current_key:
                return False
            if held[1] <= 1:
                del _leases[self.key]
            else:
                _leases[self.key] = (current_key, held[1] - 1)
            return True

    def _lease(self, current_key: str, left: int) -> None:
        with _leases_lock:
            if len(_leases) >= LEASES_KEPT:
                _leases.clear()  # forgetting leases only means counting their requests again
            _leases[self.key] = (current_key, left)

    def _count(self, cache: Any, current_key: str, previous_key: str, n: int) -> tuple[int, int]:
        """``n`` requests counted in the current window; (current, previous) counts."""
        ttl = 2 * self.duration + 1
        if cache is default_cache:
            # DRF's default is django.core.cache.cache, a proxy isinstance() cannot see through:
            # without this every request took the path below, four round trips to Redis.
            cache = caches[DEFAULT_CACHE_ALIAS]
        if isinstance(cache, RedisCache):
            current_key, previous_key = cache.make_key(current_key), cache.make_key(previous_key)
            client = cache._cache.get_client(current_key, write=True)
            # One command, where a pipeline of three cost more Python than the round trip; by
            # its digest (EVALSHA), loading it only when a Redis does not know it yet.
            script = _count_script(client)
            current, previous = script(keys=[current_key, previous_key], args=[ttl, n], client=client)
            return int(current), int(previous or 0)
        cache.add(current_key, 0, ttl)
        return cache.incr(current_key, n), int(cache.get(previous_key) or 0)

    def _refused(self, current: int, previous: int, into: float) -> None:
        """How long until a request would be let through (the counts without this one)."""
        d, n, counted = self.duration, self.num_requests, current - 1
        if previous and counted < n:
            # Within this window: previous * (1 - x / d) + counted + 1 <= n, x = into + wait.
            x = d * (1 - (n - counted - 1) / previous)
            if x <= d:
                self._wait = max(0.0, x - into)
                return
        # In the next window this one's count is the previous: counted * (1 - t / d) + 1 <= n.
        t = d * (1 - (n - 1) / counted) if counted > n - 1 else 0.0
        self._wait = d - into + max(0.0, t)

    def wait(self) -> float | None:
        return math.ceil(getattr(self, "_wait", self.duration)) or 1


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
