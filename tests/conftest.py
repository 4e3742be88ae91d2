"""Shared fixtures: personas, an API client, and the real-services switch for integration tests."""

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests import factories
from tests.fake_openai import FakeOpenAI

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def expert(db):
    return factories.make_user("expert", roles=("Domain expert",), is_staff=True)


@pytest.fixture
def reviewer(db):
    return factories.make_user("reviewer", roles=("Reviewer",), is_staff=True)


@pytest.fixture
def dataset_owner(db):
    return factories.make_user("dataset_owner", roles=("Dataset owner",), is_staff=True)


@pytest.fixture
def rubric_owner(db):
    return factories.make_user("rubric_owner", roles=("Rubric owner",), is_staff=True)


@pytest.fixture
def gate_owner(db):
    return factories.make_user("gate_owner", roles=("Gate owner",), is_staff=True)


@pytest.fixture
def approver(db):
    return factories.make_user("approver", roles=("Release approver",), is_staff=True)


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """PBKDF2 is slow by design; tests create many users and never attack their hashes."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """A local OpenAI-compatible server (tests/fake_openai.py) the real openai client talks to."""
    # A proxy in the environment would carry the client's traffic off 127.0.0.1; httpx honours them.
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(autouse=True)
def api_memo(request: pytest.FixtureRequest, settings) -> Iterator[None]:
    """Answers the API keeps in memory are forgotten on PostgreSQL's notifications, which only a
    commit sends: a test inside a transaction that is rolled back never sends one, so only tests
    marked ``api_memo`` (transactional ones, tests/integration/test_api_memo.py) keep any."""
    from gates_app.api import memo

    if request.node.get_closest_marker("api_memo") is None:
        settings.EVALGATE_API_MEMO = False
    yield
    memo.forget()


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """Rate-limit counters live in the cache: each test starts with none, and with no lease of a
    count a test before it took (a lease outlives the counter it was taken from)."""
    from django.core.cache import cache

    from gates_app.api import throttling

    cache.clear()
    with throttling._leases_lock:
        throttling._leases.clear()
    yield


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers.get("Content-Type"), json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[HTTPServer]:
    """A tiny receiver on 127.0.0.1 recording each POST as (path, content type, JSON body)."""
    for name in PROXY_VARIABLES:  # a proxy would carry the POST off 127.0.0.1
        monkeypatch.delenv(name, raising=False)
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
