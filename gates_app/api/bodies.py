"""The cache of decided checks' API bodies.

A decided check is read far more often than it changes (a deploy script polls, then every
later pipeline asks again), and building its body costs queries for its gate, run, decisions
and missing cases. Once decided, its body changes only with a decision (approvals, overrides,
``release_allowed``) or a setting of its gate that the body shows; the cache key is a digest of
exactly those, read in the one query that also checks the requester may see the check. A key
therefore never serves a stale body: the next request after any change looks up a new key.

Each process also keeps the bodies it served last (``LOCAL_KEPT`` of them) in front of the
shared cache: a key names one immutable body, so a copy in memory is as fresh as the shared
one, and a poll that hits it costs no round trip to Redis.

The cache is optional: when it cannot be reached, bodies are built as if nothing were cached.
"""

import functools
import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Count, Max, QuerySet
from django.urls import get_script_prefix, get_urlconf, reverse
from rest_framework.request import Request

from evalproject.prepared import prepared_cursor
from gates_app.api.permissions import token_row_gate_sql, visible_gate_sql
from gates_app.choices import CheckStatus
from gates_app.models import Check, CheckDecision, DeployToken
from gates_app.tokens import Lookahead, db_values

logger = logging.getLogger(__name__)
KEPT_S = 24 * 3600
# What a decided check's body can still change with (besides its id).
FINGERPRINT = (
    "status", "verdict", "release_allowed", "decided_at", "decisions_n", "decisions_last",
    "gate__slug", "gate__warnings_need_approval", "gate__required_approvals",
)  # fmt: skip
ADMIN_URL = "admin_url"  # the one field that depends on the request (its host)
VERSION = 1  # bump when the body's shape changes, so no body of the old shape is served
LOCAL_KEPT = 256  # bodies per process, most recently served first (a few KiB each)
_local: OrderedDict[str, dict[str, Any]] = OrderedDict()
_local_lock = threading.Lock()  # gthread workers serve requests from several threads


@dataclass(frozen=True)
class State:
    pk: int
    key: str | None  # None: not decided, nothing to cache


def decided_state(visible: QuerySet[Check], pk: Any) -> State | None:
    """The check's cache key if it is decided; None if the requester cannot see it.

    The reference for ``visible_decided_state``, which the API's hot path uses instead.
    """
    row = (
        visible.filter(pk=pk)
        .order_by()
        .values("pk", *(f for f in FINGERPRINT if not f.startswith("decisions_")))
        .annotate(decisions_n=Count("decisions"), decisions_last=Max("decisions__id"))
        .first()
    )
    return None if row is None else _state(row)


def visible_decided_state(request: Request, pk: int) -> State | None:
    """``decided_state(Check.objects.filter(gate__in=visible_gates(request)), pk)`` in one SQL
    query built once per process and prepared once per connection: the ORM took three times the
    query's own cost to compile it, on every request of every deploy script polling a verdict."""
    conn = connections[DEFAULT_DB_ALIAS]
    condition, params = visible_gate_sql(request)
    columns, tables = _state_sql(conn.vendor)
    sql = f"SELECT {columns} {tables} WHERE c.{_pk_column()} = %s AND {condition}"
    with prepared_cursor() as cursor:
        cursor.execute(sql, [pk, *params])
        row = cursor.fetchone()
    return None if row is None else _state_of(conn, row)


def deploy_token_lookahead(pk: int) -> Lookahead:
    """The check's state for a deploy token, in the token's own query (gates_app.tokens): the
    check ``pk`` when its gate is active and one of the token's (``visible_gates`` for a deploy
    token), else NULL columns. A personal token's row always has NULL here: users' visibility
    goes through the auth backends (``visible_decided_state``)."""
    columns, join = _lookahead_sql(connections[DEFAULT_DB_ALIAS].vendor)
    return Lookahead(columns, join, (pk, True))


@functools.cache
def _lookahead_sql(vendor: str) -> tuple[str, str]:
    columns, tables = _state_sql(vendor)
    user_fk = DeployToken._meta.get_field("user").column
    visible = token_row_gate_sql()
    join = (
        f"LEFT OUTER JOIN ({tables.removeprefix('FROM ')}) "
        f"ON c.{_pk_column()} = %s AND t.{connection.ops.quote_name(user_fk)} IS NULL AND {visible}"
    )
    return columns, join


def state_from_lookahead(row: tuple[Any, ...]) -> State | None:
    """The state ``deploy_token_lookahead`` fetched; None: the token may not see the check."""
    return None if row[0] is None else _state_of_row(connections[DEFAULT_DB_ALIAS].vendor, row)


@functools.lru_cache(maxsize=4 * LOCAL_KEPT)
def _state_of_row(vendor: str, row: tuple[Any, ...]) -> State:
    """``_state_of`` for a row seen before (a poll answered from memory brings the same row):
    the state is a function of the row's values alone."""
    return _state_of(connections[DEFAULT_DB_ALIAS], row)


def _state_of(conn: Any, row: tuple[Any, ...]) -> State:
    names, fields = _state_columns()
    *columns, decisions_n, decisions_last = row
    state = dict(zip(names, db_values(conn, fields, columns), strict=True))
    return _state({**state, "decisions_n": decisions_n, "decisions_last": decisions_last})


@functools.cache
def _state_columns() -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The names and model fields of what the query reads before the decisions' count and last id."""
    names = ("pk", *(f for f in FINGERPRINT if not f.startswith("decisions_")))
    return names, tuple(_field(name) for name in names)


def _field(name: str) -> Any:
    if name.startswith("gate__"):
        return Check._meta.get_field("gate").related_model._meta.get_field(name.removeprefix("gate__"))
    return Check._meta.pk if name == "pk" else Check._meta.get_field(name)


def _pk_column() -> str:
    return connection.ops.quote_name(Check._meta.pk.column)


@functools.cache
def _state_sql(vendor: str) -> tuple[str, str]:
    """(select list, FROM clause) of a check ``c``'s id, fingerprint and decisions' count and last
    id, with its gate ``g``; callers add which check and the gate's visibility."""
    qn, check, decision = connection.ops.quote_name, Check._meta, CheckDecision._meta
    gate_fk = check.get_field("gate")
    columns = [f"{'c' if f.model is Check else 'g'}.{qn(f.column)}" for f in _state_columns()[1]]
    check_id = f"c.{qn(check.pk.column)}"
    of_check = qn(decision.get_field("gate_check").column)
    decisions = f"FROM {qn(decision.db_table)} d WHERE d.{of_check} = {check_id}"
    columns += [f"(SELECT COUNT(*) {decisions})", f"(SELECT MAX(d.{qn(decision.pk.column)}) {decisions})"]
    tables = (
        f"FROM {qn(check.db_table)} c "
        f"INNER JOIN {qn(gate_fk.related_model._meta.db_table)} g "
        f"ON g.{qn(gate_fk.target_field.column)} = c.{qn(gate_fk.column)}"
    )
    return ", ".join(columns), tables


def _state(row: dict[str, Any]) -> State:
    if row["status"] != CheckStatus.DONE or row["decided_at"] is None:
        return State(row["pk"], None)
    digest = hashlib.blake2b(repr([row[f] for f in FINGERPRINT]).encode(), digest_size=16).hexdigest()
    return State(row["pk"], f"evalgate:check-body:v{VERSION}:{row['pk']}:{digest}")


def cached(key: str) -> dict[str, Any] | None:
    """The body kept under ``key``: from this process's memory, else from the shared cache.
    Callers copy it before changing it (``for_request``)."""
    with _local_lock:
        body = _local.get(key)
        if body is not None:
            _local.move_to_end(key)
            return body
    try:
        body = cache.get(key)
    except Exception as exc:  # Redis down or refusing: build the body instead
        logger.warning("check bodies built uncached: the cache is unreachable (%s)", exc)
        return None
    if body is not None:
        _remember(key, body)
    return body


def keep(key: str, body: dict[str, Any]) -> None:
    body = dict(body)
    _remember(key, body)
    try:
        cache.set(key, body, KEPT_S)
    except Exception as exc:
        logger.warning("check body not cached: the cache is unreachable (%s)", exc)


def _remember(key: str, body: dict[str, Any]) -> None:
    with _local_lock:
        _local[key] = body
        _local.move_to_end(key)
        while len(_local) > LOCAL_KEPT:
            _local.popitem(last=False)


def for_request(body: dict[str, Any], request: Request, pk: int) -> dict[str, Any]:
    """The cached body with this request's absolute admin URL (key order kept)."""
    body = dict(body)
    urlconf = get_urlconf() or settings.ROOT_URLCONF
    body[ADMIN_URL] = request.build_absolute_uri(_admin_path(get_script_prefix(), urlconf, pk))
    return body


@functools.lru_cache(maxsize=LOCAL_KEPT)
def _admin_path(script_prefix: str, urlconf: str, pk: int) -> str:
    """The check's admin path (reversing it cost as much as the rest of serving a cached body);
    keyed by everything reverse() reads besides the arguments."""
    return reverse("admin:gates_app_check_change", args=[pk], urlconf=urlconf)
