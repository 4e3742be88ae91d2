"""A request whose Idempotency-Key is still being processed elsewhere gets 409 at once (PostgreSQL)."""

import threading

import pytest
from django.db import connection, connections, transaction

from gates_app.models import Check
from gates_app.services import _claim_idempotency_key
from tests.factories import make_scenario, make_token, outputs_for


@pytest.mark.django_db(transaction=True)
def test_a_key_still_in_flight_answers_409(api_client, django_db_serialized_rollback):
    if connection.vendor != "postgresql":
        pytest.skip("the in-flight answer uses PostgreSQL advisory locks; SQLite serialises writers")
    s = make_scenario()
    secret = make_token([s["gate"]])
    holding, release = threading.Event(), threading.Event()

    def first_request_in_progress() -> None:
        # Another web process in the middle of the first request: it holds the key's lock.
        try:
            with transaction.atomic():
                _claim_idempotency_key(s["gate"], "deploy-7")
                holding.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=first_request_in_progress)
    thread.start()
    try:
        assert holding.wait(10)
        response = api_client.post(
            f"/api/v1/gates/{s['gate'].slug}/checks/",
            {"candidate": "v1", "outputs": outputs_for(s["cases"])},
            format="json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
            HTTP_IDEMPOTENCY_KEY="deploy-7",
        )
    finally:
        release.set()
        thread.join()
    assert response.status_code == 409
    body = response.json()["error"]
    assert body["code"] == "in_flight" and body["details"] == {"idempotency_key": "deploy-7"}
    assert Check.objects.count() == 0
    # Once the first request is over, the same key goes through.
    retry = api_client.post(
        f"/api/v1/gates/{s['gate'].slug}/checks/",
        {"candidate": "v1", "outputs": outputs_for(s["cases"])},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
        HTTP_IDEMPOTENCY_KEY="deploy-7",
    )
    assert retry.status_code == 202
