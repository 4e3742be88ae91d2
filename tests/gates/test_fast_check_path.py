"""The decided-check hot path runs hand-written SQL instead of compiling ORM queries (for a
deploy token one query: the token with the check's state), prepared once per connection on
PostgreSQL: each is pinned here to the ORM query it replaces, for every kind of requester, and
the API still refuses every way around the rules (another gate, revoked, expired, inactive)."""

import os
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import AnonymousUser, Group, Permission
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from gates_app.api import bodies
from gates_app.api.permissions import visible_gates
from gates_app.api.throttling import PerClientRateThrottle
from gates_app.choices import CheckStatus, DecisionKind, Scope, Verdict
from gates_app.models import Check, CheckDecision, DeployToken
from gates_app.tokens import _hash, authenticate_secret, authenticate_secret_with, create_token, revoke_token
from tests.factories import make_dataset, make_gate, make_user
from tests.gates.test_api import bearer

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    """Two gates (and an inactive third), each with a decided, a warned-and-approved and an
    undecided check, and people in every relation to the first gate."""
    owner, co_owner, approver = make_user("alice"), make_user("bob"), make_user("charlie")
    dataset = make_dataset(owner=owner)
    gate = make_gate(dataset, "release", owner=owner)
    gate.co_owners.add(co_owner)
    gate.approvers.add(approver, co_owner)  # two relations: the ORM path's distinct()
    other = make_gate(dataset, "other")
    retired = make_gate(dataset, "retired", owner=owner)
    retired.active = False
    retired.save(update_fields=["active"])
    now = timezone.now()
    checks = {}
    for g in (gate, other, retired):
        checks[g.slug, "pass"] = Check.objects.create(
            gate=g, candidate="v1", status=CheckStatus.DONE, verdict=Verdict.PASS, decided_at=now
        )
        warned = Check.objects.create(
            gate=g, candidate="v2", status=CheckStatus.DONE, verdict=Verdict.WARN, decided_at=now
        )
        CheckDecision.objects.create(
            gate_check=warned,
            kind=DecisionKind.APPROVE,
            actor=approver,
            actor_username="charlie",
            reason="ok",
        )
        checks[g.slug, "warn"] = warned
        checks[g.slug, "queued"] = Check.objects.create(gate=g, candidate="v3")
    viewer = make_user("viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_gate"))
    group_viewer = make_user("group_viewer")
    group = Group.objects.create(name="gate viewers")
    group.permissions.add(Permission.objects.get(codename="view_gate"))
    group_viewer.groups.add(group)
    return SimpleNamespace(
        gate=gate,
        other=other,
        retired=retired,
        checks=checks,
        owner=owner,
        co_owner=co_owner,
        approver=approver,
        viewer=viewer,
        group_viewer=group_viewer,
        stranger=make_user("stranger"),
        superuser=make_user("root", is_superuser=True, is_staff=True),
    )


def requesters(world):
    """(label, request-like) for every kind of requester, as authentication leaves them."""
    tokens = {
        "token of the gate": [world.gate],
        "token of another gate": [world.other],
        "token of both gates": [world.gate, world.other],
        "token of the retired gate": [world.retired],
    }
    for label, gates in tokens.items():
        token, _ = create_token(name=label, gates=gates, actor=None)
        yield label, SimpleNamespace(auth=token, user=AnonymousUser())
    # create_token refuses a deploy token without gates; one can still lose them all later.
    token, _ = create_token(name="orphan", gates=[world.gate], actor=None)
    token.gates.clear()
    yield "token whose gates were removed", SimpleNamespace(auth=token, user=AnonymousUser())
    people = ("owner", "co_owner", "approver", "viewer", "group_viewer", "stranger", "superuser")
    for name in people:
        user = getattr(world, name)
        token, _ = create_token(name=f"{name}'s", user=user, actor=None)
        yield f"personal token of {name}", SimpleNamespace(auth=token, user=user)
        yield f"session of {name}", SimpleNamespace(auth=None, user=type(user).objects.get(pk=user.pk))


def test_the_raw_visibility_query_answers_as_the_orm_for_every_requester_and_check(world):
    missing = max(c.pk for c in world.checks.values()) + 1
    pks = [c.pk for c in world.checks.values()] + [missing]
    seen = {}
    for label, request in requesters(world):
        for pk in pks:
            reference = bodies.decided_state(Check.objects.filter(gate__in=visible_gates(request)), pk)
            assert bodies.visible_decided_state(request, pk) == reference, (label, pk)
        seen[label] = {pk for pk in pks if bodies.visible_decided_state(request, pk) is not None}
    of = lambda slug: {c.pk for (s, _), c in world.checks.items() if s == slug}  # noqa: E731
    # The rule itself, so both paths cannot agree on a wrong answer.
    assert seen["token of the gate"] == of("release")
    assert seen["token of another gate"] == of("other")
    assert seen["token of both gates"] == of("release") | of("other")
    assert seen["token of the retired gate"] == seen["token whose gates were removed"] == set()
    for name in ("owner", "co_owner", "approver"):
        assert seen[f"personal token of {name}"] == seen[f"session of {name}"] == of("release")
    for name in ("viewer", "group_viewer", "superuser"):
        assert seen[f"personal token of {name}"] == of("release") | of("other")
    assert seen["personal token of stranger"] == seen["session of stranger"] == set()


def test_the_fingerprint_follows_decisions_and_gate_settings_as_the_orm_one(world):
    request = SimpleNamespace(auth=None, user=world.superuser)
    warned = world.checks["release", "warn"]
    before = bodies.visible_decided_state(request, warned.pk)
    assert before.key is not None
    assert bodies.visible_decided_state(request, world.checks["release", "queued"].pk).key is None
    CheckDecision.objects.create(
        gate_check=warned, kind=DecisionKind.APPROVE, actor=world.co_owner, actor_username="bob", reason="ok"
    )
    after = bodies.visible_decided_state(request, warned.pk)
    assert after.key != before.key
    world.gate.required_approvals = 2
    world.gate.save(update_fields=["required_approvals"])
    changed = bodies.visible_decided_state(request, warned.pk)
    assert changed.key != after.key
    assert changed == bodies.decided_state(Check.objects.all(), warned.pk)


def fields_of(instance):
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def orm_token(secret):
    """The ORM path authenticate_secret replaced (without its last_used_at write)."""
    prefix = secret.split("_")[1]
    return DeployToken.objects.usable().select_related("user").filter(prefix=prefix).first()


def test_the_raw_token_lookup_returns_what_the_orm_returned(world):
    _, deploy_secret = create_token(
        name="ci", gates=[world.gate], scopes=[Scope.CHECKS_READ], expires_in_days=3, actor=None
    )
    _, personal_secret = create_token(name="mine", user=world.owner, actor=None)
    for secret in (deploy_secret, personal_secret):
        reference = orm_token(secret)
        token = authenticate_secret(secret)
        assert type(token) is DeployToken and not token._state.adding
        assert fields_of(token) | {"last_used_at": None} == fields_of(reference) | {"last_used_at": None}
        assert token.scopes == reference.scopes and token.expires_at == reference.expires_at
        if reference.user is None:
            assert token.user is None
        else:
            with CaptureQueriesContext(connection) as queries:
                assert fields_of(token.user) == fields_of(reference.user)
            assert not queries.captured_queries  # the user came with the token, as select_related
    assert authenticate_secret(deploy_secret[:-1] + ("A" if deploy_secret[-1] != "A" else "B")) is None
    assert authenticate_secret("egt_nosuchprefix_secret") is None
    assert authenticate_secret("not a token") is None


def test_last_used_is_written_at_most_once_a_minute(world):
    token, secret = create_token(name="ci", gates=[world.gate], actor=None)

    def writes() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert authenticate_secret(secret) is not None
        return sum(q["sql"].startswith("UPDATE") for q in queries.captured_queries)

    assert writes() == 1  # never used before
    first = DeployToken.objects.get(pk=token.pk).last_used_at
    assert first is not None and writes() == 0  # within the minute
    DeployToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    assert writes() == 1
    assert DeployToken.objects.get(pk=token.pk).last_used_at > first


def test_revocation_expiry_and_deactivation_count_from_the_very_next_request(world, api_client):
    check = world.checks["release", "pass"]
    url = f"/api/v1/checks/{check.pk}/"
    deploy, deploy_secret = create_token(name="ci", gates=[world.gate], expires_in_days=1, actor=None)
    personal, personal_secret = create_token(name="mine", user=world.owner, actor=None)
    for secret in (deploy_secret, personal_secret):
        assert api_client.get(url, **bearer(secret)).status_code == 200
        assert api_client.get(url, **bearer(secret)).status_code == 200  # the body is cached now

    DeployToken.objects.filter(pk=deploy.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert orm_token(deploy_secret) is None and authenticate_secret(deploy_secret) is None
    assert api_client.get(url, **bearer(deploy_secret)).status_code == 401

    world.owner.is_active = False
    world.owner.save(update_fields=["is_active"])
    assert api_client.get(url, **bearer(personal_secret)).status_code == 401
    world.owner.is_active = True
    world.owner.save(update_fields=["is_active"])
    assert api_client.get(url, **bearer(personal_secret)).status_code == 200

    revoke_token(personal, actor=None, reason="leaked")
    assert orm_token(personal_secret) is None and authenticate_secret(personal_secret) is None
    assert api_client.get(url, **bearer(personal_secret)).status_code == 401


def test_a_token_never_reads_a_check_of_a_gate_it_does_not_cover(world, api_client):
    _, secret = create_token(name="ci", gates=[world.other], actor=None)
    _, retired = create_token(name="old", gates=[world.retired], actor=None)
    _, own = create_token(name="own", gates=[world.gate], actor=None)
    for kind in ("pass", "warn", "queued"):
        url = f"/api/v1/checks/{world.checks['release', kind].pk}/"
        assert api_client.get(url, **bearer(own)).status_code == 200  # cached from here on
        for stranger in (secret, retired):
            response = api_client.get(url, **bearer(stranger))
            assert response.status_code == 404 and set(response.json()) == {"error"}
    no_scope = create_token(name="cases only", gates=[world.gate], scopes=[Scope.CASES_WRITE], actor=None)[1]
    assert (
        api_client.get(
            f"/api/v1/checks/{world.checks['release', 'pass'].pk}/", **bearer(no_scope)
        ).status_code
        == 403
    )


def test_a_cached_decided_check_costs_two_queries_and_compiles_none(world, api_client, monkeypatch):
    _, secret = create_token(name="ci", gates=[world.gate], actor=None)
    url = f"/api/v1/checks/{world.checks['release', 'warn'].pk}/"
    first = api_client.get(url, **bearer(secret))  # builds and caches the body
    assert first.status_code == 200

    def no_orm(*args, **kwargs):
        raise AssertionError("the decided-check path compiled an ORM query")

    monkeypatch.setattr(SQLCompiler, "as_sql", no_orm)
    with CaptureQueriesContext(connection) as queries:
        again = api_client.get(url, **bearer(secret))
    assert again.content == first.content
    # 1. the token by prefix, with its user (none: a deploy token)
    # 2. the check, if its gate is one of the token's, with its fingerprint
    # 1. the token by prefix, with its user (none: a deploy token) and, joined to it, the check
    #    if its gate is one of the token's, with its fingerprint
    assert len(queries.captured_queries) == 1, [q["sql"] for q in queries.captured_queries]


def test_a_personal_token_reads_the_check_in_a_second_query_through_its_permissions(
    world, api_client, monkeypatch
):
    _, secret = create_token(name="mine", user=world.owner, actor=None)
    url = f"/api/v1/checks/{world.checks['release', 'warn'].pk}/"
    assert api_client.get(url, **bearer(secret)).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert api_client.get(url, **bearer(secret)).status_code == 200
    # 1. the token with its user (the joined check columns are NULL for a personal token)
    # 2. the user's permissions (ModelBackend: view_gate, user and group permissions)
    # 3. the check, if the user owns, co-owns or approves its gate, with its fingerprint
    assert len(queries.captured_queries) <= 4, [q["sql"] for q in queries.captured_queries]
    assert queries.captured_queries[-1]["sql"].startswith("SELECT c.")


def test_the_token_lookahead_answers_as_the_orm_for_every_deploy_token_and_check(world):
    missing = max(c.pk for c in world.checks.values()) + 1
    pks = [c.pk for c in world.checks.values()] + [missing]
    seen = 0
    for label, request in requesters(world):
        if request.auth is None or request.auth.is_personal:
            continue
        secret = f"egt_{request.auth.prefix}_x"
        DeployToken.objects.filter(pk=request.auth.pk).update(secret_hash=_hash(secret))
        for pk in pks:
            token, row = authenticate_secret_with(secret, bodies.deploy_token_lookahead(pk))
            assert token.pk == request.auth.pk
            reference = bodies.decided_state(Check.objects.filter(gate__in=visible_gates(request)), pk)
            assert bodies.state_from_lookahead(row) == reference, (label, pk)
            seen += reference is not None
        # A wrong secret for the same prefix reads nothing joined to it either.
        wrong = authenticate_secret_with(f"{secret}y", bodies.deploy_token_lookahead(pks[0]))
        assert wrong == (None, None)
    assert seen == 12  # 3 checks each: the token of a gate, of the other, and of both (6)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")
def test_the_hot_queries_are_prepared_once_per_connection_on_postgresql(world, api_client):
    _, deploy_secret = create_token(name="ci", gates=[world.gate], actor=None)
    _, personal_secret = create_token(name="mine", user=world.owner, actor=None)
    url = f"/api/v1/checks/{world.checks['release', 'pass'].pk}/"
    for _ in range(4):
        for secret in (deploy_secret, personal_secret):
            assert api_client.get(url, **bearer(secret)).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        statements = [row[0] for row in cursor.fetchall()]
    token_queries = [s for s in statements if "deploytoken" in s and "prefix" in s]
    # One statement for both tokens: the token with the check's columns joined (NULL for the
    # personal token, whose check is read by the second statement, through its permissions).
    assert len(token_queries) == 1 and "$1" in token_queries[0], token_queries
    assert any(s.startswith("SELECT c.") for s in statements)  # a personal token's check query


def test_without_the_cache_the_fast_path_still_builds_the_same_body(world, api_client, monkeypatch):
    _, secret = create_token(name="ci", gates=[world.gate], actor=None)
    url = f"/api/v1/checks/{world.checks['release', 'warn'].pk}/"
    cached = api_client.get(url, **bearer(secret))
    cache.clear()
    monkeypatch.setattr(bodies, "_local", type(bodies._local)())  # nor this process's copy
    with CaptureQueriesContext(connection) as queries:
        rebuilt = api_client.get(url, **bearer(secret))
    assert rebuilt.content == cached.content
    assert len(queries.captured_queries) > 2  # built again, not served from memory


@pytest.fixture
def redis_default_cache(settings):
    """The default cache on a real Redis, as in production (EVALGATE_TEST_REDIS_URL)."""
    url = os.environ.get("EVALGATE_TEST_REDIS_URL")
    if not url:
        pytest.skip("EVALGATE_TEST_REDIS_URL is not set")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}
    cache.clear()
    yield cache
    cache.clear()


def test_the_throttle_counts_on_the_default_redis_cache_in_one_command(
    world, api_client, redis_default_cache, monkeypatch
):
    # DRF hands the throttle django.core.cache.cache, a proxy: the one-command path must still
    # be the one taken (it was not: every request took four round trips).
    monkeypatch.setattr(PerClientRateThrottle, "THROTTLE_RATES", {"client": "3/min"})
    monkeypatch.setattr(RedisCache, "add", lambda *a, **k: pytest.fail("the generic cache path"))
    token, secret = create_token(name="ci", gates=[world.gate], actor=None)
    url = f"/api/v1/checks/{world.checks['release', 'pass'].pk}/"
    client = redis_default_cache._cache.get_client(write=True)
    assert api_client.get(url, **bearer(secret)).status_code == 200
    client.script_flush()  # a restarted Redis forgets the script: it is loaded again, not lost
    assert [api_client.get(url, **bearer(secret)).status_code for _ in range(3)] == [200, 200, 429]
    [key] = client.keys(f"*throttle_client_token:{token.prefix}*")
    assert int(client.get(key)) == 3  # the refused request is not counted
    assert 0 < client.ttl(key) <= 121
