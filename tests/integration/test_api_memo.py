"""A deploy token's poll of a check answered from the web process's memory (gates_app.api.memo),
on real PostgreSQL with committed transactions: every way of changing what the answer read (the
services, the ORM without signals, raw SQL) reaches the process through the triggers'
notifications, and the process stops trusting its memory whenever it cannot prove it would hear
of a change. Each test tries to be served something stale."""

import time
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from gates_app.api import bodies, memo
from gates_app.choices import CheckStatus, DecisionKind, Verdict
from gates_app.models import Check, CheckDecision, DeployToken, Gate
from gates_app.tokens import create_token, revoke_token
from tests.factories import make_dataset, make_gate, make_user

pytestmark = pytest.mark.api_memo


def url(check: Check) -> str:
    return f"/api/v1/checks/{check.pk}/"


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def eventually(condition: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.01)


def queries_of(client: APIClient, check: Check, secret: str) -> tuple[int, int, dict]:
    with CaptureQueriesContext(connection) as ran:
        response = client.get(url(check), **bearer(secret))
    return response.status_code, len(ran.captured_queries), response.json()


def from_memory(client: APIClient, check: Check, secret: str) -> dict:
    """Poll until an answer is served without a query (the listener has proven itself and the
    row is kept); that answer's body."""
    found: dict = {}

    def served() -> bool:
        status, queries, body = queries_of(client, check, secret)
        assert status == 200, body
        found.update(body)
        return queries == 0

    eventually(served, "a poll answered from memory")
    return found


def from_database(client: APIClient, check: Check, secret: str, polls: int = 3) -> None:
    """Poll ``polls`` times: each answer is a 200 that read the database."""
    for _ in range(polls):
        status, queries, body = queries_of(client, check, secret)
        assert status == 200, body
        assert queries > 0


def notified(since: int | None) -> Callable[[], bool]:
    """Whether the listener has read a change since generation ``since``."""
    return lambda: memo._listener.generation() not in (since, None)


@pytest.fixture
def polled(postgres_url):
    owner = make_user("owner")
    gate = make_gate(make_dataset(owner=owner), "release", owner=owner)
    check = Check.objects.create(
        gate=gate, candidate="v1", status=CheckStatus.DONE, verdict=Verdict.WARN, decided_at=timezone.now()
    )
    token, secret = create_token(name="ci", gates=[gate], actor=None)
    return SimpleNamespace(gate=gate, check=check, token=token, secret=secret, owner=owner)


def test_a_deploy_tokens_repeated_poll_reads_no_database_and_the_same_body(polled):
    check, secret = polled.check, polled.secret
    client = APIClient()
    status, queries, first = queries_of(client, check, secret)
    assert status == 200 and queries > 0
    assert from_memory(client, check, secret) == first


@pytest.mark.parametrize(
    "change",
    ["service", "queryset", "raw SQL"],
)
def test_a_revocation_by_any_path_is_refused_once_its_notification_arrives(polled, change):
    check, token, secret, owner = polled.check, polled.token, polled.secret, polled.owner
    client = APIClient()
    from_memory(client, check, secret)
    before = memo._listener.generation()
    if change == "service":
        revoke_token(token, actor=owner, reason="leaked")
    elif change == "queryset":
        DeployToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {DeployToken._meta.db_table} SET revoked_at = now() WHERE id = %s", [token.pk]
            )
    eventually(notified(before), "the revocation's notification")
    status, queries, body = queries_of(client, check, secret)
    assert status == 401, body
    assert queries > 0


@pytest.mark.parametrize("change", ["token loses the gate", "gate retired", "gate deleted with its checks"])
def test_losing_sight_of_the_check_is_a_404_once_notified(polled, change):
    gate, check, token, secret = polled.gate, polled.check, polled.token, polled.secret
    client = APIClient()
    from_memory(client, check, secret)
    before = memo._listener.generation()
    if change == "token loses the gate":
        token.gates.clear()
    elif change == "gate retired":
        Gate.objects.filter(pk=gate.pk).update(active=False)
    else:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {CheckDecision._meta.db_table}")
            cursor.execute(f"DELETE FROM {Check._meta.db_table} WHERE id = %s", [check.pk])
    eventually(notified(before), "the change's notification")
    status, _, body = queries_of(client, check, secret)
    assert status == 404, body


def test_a_decision_or_a_gate_setting_changes_the_answer_once_notified(polled):
    gate, check, secret, owner = polled.gate, polled.check, polled.secret, polled.owner
    client = APIClient()
    first = from_memory(client, check, secret)
    before = memo._listener.generation()
    CheckDecision.objects.create(
        gate_check=check, kind=DecisionKind.APPROVE, actor=owner, actor_username="owner", reason="ok"
    )
    eventually(notified(before), "the decision's notification")
    after_decision = from_memory(client, check, secret)
    assert after_decision != first
    before = memo._listener.generation()
    Gate.objects.filter(pk=gate.pk).update(required_approvals=3)
    eventually(notified(before), "the gate's notification")
    assert from_memory(client, check, secret) != after_decision


def test_a_token_that_expires_while_kept_is_refused_without_any_write(polled):
    check, token, secret = polled.check, polled.token, polled.secret
    DeployToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() + timedelta(seconds=2))
    client = APIClient()
    from_memory(client, check, secret)
    eventually(lambda: timezone.now() > DeployToken.objects.get(pk=token.pk).expires_at, "the expiry")
    status, _, body = queries_of(client, check, secret)
    assert status == 401, body


def test_recording_a_tokens_last_use_notifies_nothing(polled, postgres_url):
    """Each API call may write last_used_at: were that a change, every poll would empty every
    process's memory. A marker sent after it arrives first if nothing else was sent."""
    token = polled.token
    with (
        psycopg.connect(postgres_url, autocommit=True) as listener,
        psycopg.connect(postgres_url, autocommit=True) as writer,
    ):
        listener.execute(f"LISTEN {memo.CHANNEL}")
        writer.execute(
            f"UPDATE {DeployToken._meta.db_table} SET last_used_at = now() WHERE id = %s", [token.pk]
        )
        writer.execute("SELECT pg_notify(%s, 'marker')", [memo.CHANNEL])
        writer.execute(f"UPDATE {DeployToken._meta.db_table} SET note = 'changed' WHERE id = %s", [token.pk])
        payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=2)]
    assert payloads[0] == "marker", payloads
    assert payloads[1] == DeployToken._meta.db_table, payloads


def test_a_personal_token_is_never_kept(polled):
    check, owner = polled.check, polled.owner
    _, secret = create_token(name="mine", user=owner, actor=owner)
    client = APIClient()
    from_memory(client, check, polled.secret)  # the listener has proven itself
    from_database(client, check, secret)


def test_without_a_listening_connection_every_poll_reads_the_database(polled, monkeypatch):
    check, secret = polled.check, polled.secret
    memo.forget()

    def refuse():
        raise psycopg.OperationalError("no listening today")

    monkeypatch.setattr(memo._listener, "_connect", refuse)
    from_database(APIClient(), check, secret)


def test_a_listening_connection_that_dies_is_not_trusted_and_is_replaced(polled, monkeypatch):
    check, secret = polled.check, polled.secret
    client = APIClient()
    from_memory(client, check, secret)
    backend = memo._listener._conn.info.backend_pid
    monkeypatch.setattr(memo, "RETRY_S", 0.0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
    eventually(lambda: memo._listener.generation() is None, "the dead connection noticed")
    status, queries, _ = queries_of(client, check, secret)
    assert status == 200 and queries > 0
    from_memory(client, check, secret)  # a new connection proved itself
    assert memo._listener._conn.info.backend_pid != backend


def test_memory_is_not_trusted_when_the_heartbeat_has_not_come_back(polled):
    """A connection that stays open but delivers nothing (a hung network) stops being trusted
    once its last proof is older than CONFIRMED_S."""
    check, secret = polled.check, polled.secret
    client = APIClient()
    from_memory(client, check, secret)
    stale = time.monotonic() - memo.CONFIRMED_S - 1
    memo._listener._confirmed_at = stale
    memo._listener._last_beat = time.monotonic() + 60  # and no new heartbeat is sent
    from_database(client, check, secret)


def test_a_forked_process_opens_its_own_listening_connection(polled, monkeypatch):
    check, secret = polled.check, polled.secret
    client = APIClient()
    from_memory(client, check, secret)
    parents = memo._listener._conn
    monkeypatch.setattr(memo._listener, "_pid", -1)  # as a child sees the parent's listener
    eventually(lambda: memo._listener.generation() is not None, "a new connection proven")
    assert memo._listener._conn is not parents
    assert not parents.closed  # the parent's socket was left alone
    parents.close()


def test_each_answer_from_memory_gets_a_token_of_its_own(polled):
    """What one request does to its token (request.auth) never reaches the next one's."""
    check, secret = polled.check, polled.secret
    from_memory(APIClient(), check, secret)
    lookahead = bodies.deploy_token_lookahead(check.pk)
    first, _ = memo.authenticate(secret, lookahead)
    first.scopes.append("a scope a view added")
    first.note = "changed by a view"
    second, _ = memo.authenticate(secret, lookahead)
    assert second is not first
    assert "a scope a view added" not in second.scopes and second.note != "changed by a view"


def test_a_token_of_another_gate_is_refused_from_memory_too_until_it_is_given_the_gate(polled):
    """Memory keeps a refusal as it keeps an answer: a token for another gate gets 404 on every
    poll, answered from memory or not, and the check only once its gate is added (notified)."""
    check, secret, owner = polled.check, polled.secret, polled.owner
    other = make_gate(make_dataset(owner=owner), "other", owner=owner)
    stranger, stranger_secret = create_token(name="other-ci", gates=[other], actor=None)
    client = APIClient()
    from_memory(client, check, secret)  # the listener has proven itself
    statuses = []
    for _ in range(5):
        status, queries, _ = queries_of(client, check, stranger_secret)
        statuses.append((status, queries > 0))
    assert {status for status, _ in statuses} == {404}
    assert statuses[-1] == (404, False)  # the refusal itself came from memory
    before = memo._listener.generation()
    stranger.gates.add(polled.gate)
    eventually(notified(before), "the grant's notification")
    status, _, body = queries_of(client, check, stranger_secret)
    assert status == 200, body
