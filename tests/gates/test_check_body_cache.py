"""Decided checks' API bodies come from the cache, and never a stale one: a decision or a gate
setting shows on the next request, visibility is checked on every request, and the API
answers the same when the cache is down."""

import contextlib

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from gates_app.api import bodies
from gates_app.services import save_gate
from tests.factories import make_gate, make_scenario, make_token, outputs_for
from tests.gates.test_api import bearer, post_check

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    with contextlib.suppress(Exception):  # the test that points the cache at nothing
        cache.clear()


@pytest.fixture
def warned(api_client, approver, django_capture_on_commit_callbacks):
    """A decided check whose verdict is warn (so it waits for an approval)."""
    s = make_scenario()
    s["gate"].approvers.add(approver)
    secret = make_token([s["gate"]])
    with django_capture_on_commit_callbacks(execute=True):
        response = post_check(
            api_client,
            s["gate"],
            secret,
            {"candidate": "slow", "outputs": outputs_for(s["cases"], latency_ms=5000)},
        )
    return {
        **s,
        "secret": secret,
        "url": f"/api/v1/checks/{response.json()['id']}/",
        "id": response.json()["id"],
    }


def get(api_client, warned, secret=None, **extra):
    return api_client.get(warned["url"], **bearer(secret or warned["secret"]), **extra)


def test_a_decided_check_is_served_from_the_cache_with_the_body_it_had(api_client, warned):
    first = get(api_client, warned)
    assert first.status_code == 200 and first.json()["verdict"] == "warn"
    with CaptureQueriesContext(connection) as queries:
        again = get(api_client, warned)
    assert again.json() == first.json()
    assert list(again.json()) == list(first.json())  # the contract's field order too
    # Token, visibility and fingerprint; no gate, run, decisions or results reads.
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert len(selects) <= 2, selects


def test_the_admin_url_is_the_requests_own(api_client, warned, settings):
    settings.ALLOWED_HOSTS = ["testserver", "evalgate.example.test"]
    get(api_client, warned)
    other_host = get(api_client, warned, HTTP_HOST="evalgate.example.test")
    assert other_host.json()["admin_url"].startswith("http://evalgate.example.test/admin/")


def test_an_approval_shows_on_the_next_request(api_client, approver, warned):
    assert get(api_client, warned).json()["release_allowed"] is False
    personal = make_token([], user=approver)
    approved = api_client.post(
        f"/api/v1/checks/{warned['id']}/approve/", {"reason": "cold cache"}, format="json", **bearer(personal)
    )
    assert approved.status_code == 200
    body = get(api_client, warned).json()
    assert body["release_allowed"] is True
    assert [d["reason"] for d in body["approval"]["decisions"]] == ["cold cache"]


def test_a_changed_gate_setting_shows_on_the_next_request(api_client, warned):
    gate = warned["gate"]
    assert get(api_client, warned).json()["approval"]["required_approvals"] == 1
    save_gate(slug=gate.slug, actor=gate.owner, required_approvals=2)
    assert get(api_client, warned).json()["approval"]["required_approvals"] == 2


def test_a_cached_body_is_still_not_shown_to_another_gates_token(api_client, warned):
    assert get(api_client, warned).status_code == 200  # now cached
    stranger = make_token([make_gate(warned["dataset"])])
    response = get(api_client, warned, secret=stranger)
    assert response.status_code == 404 and set(response.json()) == {"error"}


def test_an_undecided_check_is_never_cached(api_client, django_capture_on_commit_callbacks):
    s = make_scenario()
    secret = make_token([s["gate"]])
    response = post_check(
        api_client, s["gate"], secret, {"candidate": "c", "outputs": outputs_for(s["cases"])}
    )
    url = response.json()["url"]
    assert api_client.get(url, **bearer(secret)).json()["status"] != "done"  # its run has not run
    state = bodies.decided_state(s["gate"].checks.all(), response.json()["id"])
    assert state is not None and state.key is None


def test_without_a_cache_the_body_is_built_as_before(api_client, warned, settings):
    cached = get(api_client, warned).json()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    response = get(api_client, warned)
    assert response.status_code == 200
    assert response.json() == cached
