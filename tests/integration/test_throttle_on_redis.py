"""Rate limits on a real Redis: one budget per client shared by every process (two throttle
instances on two cache connections stand for two gunicorn workers), counted in one round trip."""

import pytest
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import SimpleRateThrottle

from gates_app.api.throttling import PerClientRateThrottle
from tests.factories import make_scenario, make_token

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shared_cache(redis_url, monkeypatch):
    def cache():
        return RedisCache(redis_url, {"OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}})

    monkeypatch.setattr(PerClientRateThrottle, "THROTTLE_RATES", {"client": "3/min"})
    monkeypatch.setattr(PerClientRateThrottle, "timer", lambda self: 1_000_020.0 + 5)  # early in a window
    return cache


def test_two_workers_share_one_budget_per_token_through_redis(api_client, shared_cache, monkeypatch):
    s = make_scenario()
    secret = make_token([s["gate"]])
    worker_a, worker_b = shared_cache(), shared_cache()

    def get(cache):
        monkeypatch.setattr(SimpleRateThrottle, "cache", cache)
        return api_client.get("/api/v1/gates/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code

    assert [get(worker_a), get(worker_b), get(worker_a)] == [200, 200, 200]
    assert get(worker_b) == 429  # the fourth of the minute, whichever worker serves it
    keys = [k.decode() for k in worker_a._cache.get_client(write=True).keys("*throttle_client*")]
    assert len(keys) == 1 and keys[0].endswith(":16667")  # one counter, for this minute window
    assert int(worker_a._cache.get_client(write=True).get(keys[0])) == 3  # the refused one uncounted
