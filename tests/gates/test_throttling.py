"""API rate limits: each client has its own budget, and a throttled request gets a 429 it can act on."""

import pytest

from gates_app.api.throttling import PerClientRateThrottle
from tests.factories import make_scenario, make_token

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def three_per_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    # DRF reads DEFAULT_THROTTLE_RATES once, when the throttle class is defined.
    monkeypatch.setattr(PerClientRateThrottle, "THROTTLE_RATES", {"client": "3/min"})


def list_gates(client, secret: str):
    return client.get("/api/v1/gates/", HTTP_AUTHORIZATION=f"Bearer {secret}")


def test_the_fourth_request_in_a_minute_is_throttled_with_the_error_shape_and_retry_after(api_client):
    s = make_scenario()
    secret = make_token([s["gate"]])

    for _ in range(3):
        assert list_gates(api_client, secret).status_code == 200
    response = list_gates(api_client, secret)

    assert response.status_code == 429
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == "throttled"
    assert error["message"]
    retry_after = error["details"]["retry_after_s"]
    # Within the minute, or a third into the next one: the sliding-window counter weighs the
    # three requests of this window on the next (test_retrying_after_retry_after_...).
    assert isinstance(retry_after, int) and 0 < retry_after <= 60 + 60 / 3
    assert int(response["Retry-After"]) == pytest.approx(retry_after, abs=1)


def test_another_token_has_its_own_budget(api_client):
    s = make_scenario()
    first, second = make_token([s["gate"]]), make_token([s["gate"]])
    for _ in range(3):
        list_gates(api_client, first)
    assert list_gates(api_client, first).status_code == 429

    for _ in range(3):
        assert list_gates(api_client, second).status_code == 200
    assert list_gates(api_client, second).status_code == 429


def test_a_personal_token_is_budgeted_apart_from_deploy_tokens(api_client):
    s = make_scenario()
    deploy, personal = make_token([s["gate"]]), make_token([], user=s["owner"])
    for _ in range(3):
        list_gates(api_client, deploy)
    assert list_gates(api_client, deploy).status_code == 429

    assert list_gates(api_client, personal).status_code == 200


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch):
    """The throttle's clock, moved by hand (from the start of a window)."""
    now = {"t": 1_000_020.0}  # 1,000,020 = 60 x 16,667: the start of a minute window
    monkeypatch.setattr(PerClientRateThrottle, "timer", lambda self: now["t"])
    return now


def test_retrying_after_retry_after_is_let_through_and_not_before(api_client, clock):
    s = make_scenario()
    secret = make_token([s["gate"]])
    clock["t"] += 50  # three requests late in one window...
    for _ in range(3):
        assert list_gates(api_client, secret).status_code == 200
    refused = list_gates(api_client, secret)
    assert refused.status_code == 429
    wait = refused.json()["error"]["details"]["retry_after_s"]
    # ...weigh on the next window as they would on a sliding minute: a few seconds into it
    # the estimate 3 x (1 - t/60) + 1 is still over 3 (t < 20 s); from 20 s on it is not.
    assert 10 + 20 - 1 <= wait <= 10 + 20 + 1
    clock["t"] += wait - 2
    assert list_gates(api_client, secret).status_code == 429
    clock["t"] += 2
    assert list_gates(api_client, secret).status_code == 200


def test_refused_requests_do_not_count(api_client, clock):
    s = make_scenario()
    secret = make_token([s["gate"]])
    for _ in range(3):
        list_gates(api_client, secret)
    for _ in range(20):  # hammering while refused...
        assert list_gates(api_client, secret).status_code == 429
    clock["t"] += 60 + 20  # ...does not push the next allowed request further out
    assert list_gates(api_client, secret).status_code == 200
