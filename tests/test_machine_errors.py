"""Errors Django answers itself (a disallowed Host before any view, a crash after one) come in
the API's JSON error shape on the API and the OTLP receiver, and as Django's pages elsewhere."""

import pytest
from django.test import Client

from gates_app.api import views
from tests.factories import make_scenario, make_token

pytestmark = pytest.mark.django_db


def assert_error_shape(response, status: int, code: str) -> None:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code and body["error"]["message"]


@pytest.mark.parametrize("path", ["/api/v1/gates/", "/otlp/v1/traces"])
def test_a_disallowed_host_gets_the_error_shape_on_machine_endpoints(client, path):
    assert_error_shape(client.get(path, HTTP_HOST="evil.example.test"), 400, "invalid")


def test_a_disallowed_host_gets_djangos_page_in_the_admin(client):
    response = client.get("/admin/login/", HTTP_HOST="evil.example.test")
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")


def test_a_crash_in_an_api_view_is_a_json_500_not_an_html_page(monkeypatch):
    s = make_scenario()
    secret = make_token([s["gate"]])

    def broken(self, request, *args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(views.GateList, "list", broken)
    client = Client(raise_request_exception=False)
    response = client.get("/api/v1/gates/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert_error_shape(response, 500, "server_error")
    assert "a bug" not in response.content.decode()  # no internals to the client
