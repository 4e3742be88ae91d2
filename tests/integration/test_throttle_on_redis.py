"""Rate limits on a real Redis: one budget per client shared by every process (two throttle
instances on two cache connections stand for two gunicorn workers), counted in one round trip."""

import pytest
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import SimpleRateThrottle

from gates_app.api.throttling import PerClientRateThrottle
from tests.factories import make_scenario, make_token

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


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


def test_a_client_far_from_its_limit_is_counted_a_lease_at_a_time(api_client, shared_cache, monkeypatch):
    from gates_app.api import throttling

    monkeypatch.setattr(PerClientRateThrottle, "THROTTLE_RATES", {"client": "1200/min"})  # leases of 8
    monkeypatch.setattr(throttling, "_leases", {})
    s = make_scenario()
    secret = make_token([s["gate"]])
    worker = shared_cache()
    monkeypatch.setattr(SimpleRateThrottle, "cache", worker)
    redis = worker._cache.get_client(write=True)
    calls = []
    real = throttling.ResilientThrottle._count
    monkeypatch.setattr(
        throttling.ResilientThrottle, "_count", lambda self, *a: calls.append(a[-1]) or real(self, *a)
    )

    def counted() -> int:
        [key] = redis.keys("*throttle_client*")
        return int(redis.get(key))

    statuses = [
        api_client.get("/api/v1/gates/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code for _ in range(9)
    ]
    assert statuses == [200] * 9
    assert calls == [8, 8]  # the 1st and the 9th request went to Redis, each counting eight
    assert counted() == 16  # requests are counted before they are served: never under the real number


def test_leases_never_let_a_client_past_its_budget_across_workers(api_client, shared_cache, monkeypatch):
    """Two workers, each with leases of its own, serve one client in turns until it is refused:
    the client gets at most its budget, and loses at most one unused lease per other worker."""
    from gates_app.api import throttling

    monkeypatch.setattr(PerClientRateThrottle, "THROTTLE_RATES", {"client": "128/min"})  # leases of 4
    s = make_scenario()
    secret = make_token([s["gate"]])
    workers = [(shared_cache(), {}), (shared_cache(), {})]
    served = refused = 0
    for turn in range(300):
        cache, leases = workers[turn % 2]
        monkeypatch.setattr(SimpleRateThrottle, "cache", cache)
        monkeypatch.setattr(throttling, "_leases", leases)
        status = api_client.get("/api/v1/gates/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code
        served += status == 200
        refused += status == 429
    assert served + refused == 300
    assert 128 - (4 - 1) <= served <= 128
    redis = workers[0][0]._cache.get_client(write=True)
    [key] = redis.keys("*throttle_client*")
    assert int(redis.get(key)) <= 128  # refused requests uncounted, leases counted
