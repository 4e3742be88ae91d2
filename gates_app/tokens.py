"""Bearer tokens: generated once, stored as a SHA-256 hash, compared in constant time.

Who may issue what (DESIGN.md section 9): a personal token acts as its user, so only that
user issues it (a superuser may issue one for someone else, and the audit log says so); a
deploy token acts on its gates, so only an owner of every one of them issues it. Whoever
issued a deploy token answers for what it writes. ``actor=None`` is the server's shell
(``manage.py create_token`` without ``--as``), trusted like a superuser and recorded as such.
"""

import functools
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Q, QuerySet
from django.utils import timezone

from audit_app.choices import Action
from audit_app.services import record_event
from evalproject.prepared import prepared_cursor
from gates_app.choices import Scope
from gates_app.models import DeployToken, Gate

TOKEN_PREFIX = "egt"
LAST_USED_GRANULARITY = timedelta(minutes=1)  # avoid a write on every API call


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_digest(secret: str) -> str:
    """What a token's secret is stored as (its SHA-256): what a process keeps in memory in place
    of the secret itself (gates_app.api.memo)."""
    return _hash(secret)


def _is_superuser(actor: AbstractBaseUser | None) -> bool:
    return actor is None or bool(getattr(actor, "is_superuser", False))


def may_manage(token: DeployToken, actor: AbstractBaseUser | None) -> bool:
    """Superusers (and the shell) manage every token; users their personal tokens and the
    deploy tokens of gates they own."""
    if _is_superuser(actor):
        return True
    if token.is_personal:
        return token.user_id == actor.pk
    return token.gates.owned_by(actor).exists()


def tokens_visible_to(actor: AbstractBaseUser) -> QuerySet[DeployToken]:
    """The tokens ``actor`` may see and revoke (the admin's list)."""
    if actor.is_superuser:
        return DeployToken.objects.all()
    owned = DeployToken.objects.filter(gates__in=Gate.objects.owned_by(actor)).values("pk")
    return DeployToken.objects.filter(Q(user=actor) | Q(pk__in=owned))


def issue_refusal(
    actor: AbstractBaseUser | None, *, user: AbstractBaseUser | None, gates: list[Gate]
) -> Exception | None:
    """What refuses ``actor`` issuing this token, or None (the admin form asks first)."""
    if user is not None:
        if not user.is_active:
            return ValidationError({"user": f"{user.get_username()} is inactive."})
        if not _is_superuser(actor) and user.pk != actor.pk:
            return PermissionDenied("A personal token acts as its user: only they (or a superuser) issue it.")
        return None
    not_owned = sorted(g.slug for g in gates if not _is_superuser(actor) and not g.is_owner(actor))
    if not_owned:
        return PermissionDenied(
            f"You do not own gate(s) {', '.join(not_owned)}: only their owners issue deploy tokens."
        )
    return None


@transaction.atomic
def create_token(
    *,
    name: str,
    gates: list[Gate] | None = None,
    scopes: list[str] | None = None,
    user: AbstractBaseUser | None = None,
    expires_in_days: int | None = None,
    actor: AbstractBaseUser | None,
    note: str = "",
) -> tuple[DeployToken, str]:
    """Create a deploy token (gates + scopes) or, with ``user``, a personal token.

    Returns the token row and the secret. The secret is not stored and cannot be shown again.
    """
    scopes = list(scopes or ([] if user else [Scope.CHECKS_WRITE, Scope.CHECKS_READ]))
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown:
        raise ValidationError(
            {"scopes": f"Unknown scope(s): {', '.join(unknown)} (known: {', '.join(Scope.values)})."}
        )
    if user is not None and gates:
        raise ValidationError({"gates": "A personal token acts as its user: it names no gates."})
    if user is None and not gates:
        raise ValidationError({"gates": "A deploy token needs at least one gate."})
    if expires_in_days is not None and expires_in_days <= 0:
        raise ValidationError({"expires": "Expiry must be a positive number of days."})
    if not name.strip():
        raise ValidationError({"name": "Name the token after what will use it."})
    if refusal := issue_refusal(actor, user=user, gates=gates or []):
        raise refusal
    prefix = secrets.token_hex(4)
    secret = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    token = DeployToken.objects.create(
        name=name.strip(),
        prefix=prefix,
        secret_hash=_hash(secret),
        user=user,
        scopes=scopes,
        created_by=actor,
        note=note,
        expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    if gates:
        token.gates.set(gates)
    record_event(
        Action.TOKEN_CREATED,
        actor=actor,
        obj=token,
        reason=note,
        details={
            "token": token.identity(),
            "kind": "personal" if user else "deploy",
            "for_user": user.get_username() if user else None,
            # A token in another person's name is the case a reviewer looks for.
            "on_behalf": user is not None and (actor is None or user.pk != actor.pk),
            "gates": sorted(g.slug for g in gates or []),
            "scopes": sorted(scopes),
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return token, secret


@dataclass(frozen=True)
class Lookahead:
    """Columns another part of the request needs, fetched in the token's own query so the
    request pays one database round trip: ``join`` is joined to the token row ``t`` (and its
    user ``u``), ``columns`` is what it adds to the select list, ``params`` fill its
    placeholders. Only a usable token's row comes back, so nothing joined is seen without one."""

    columns: str
    join: str
    params: tuple[Any, ...]


def authenticate_secret(secret: str) -> DeployToken | None:
    """The usable token for this secret, or None. Records when it was last used.

    The token and its user come back as DeployToken.objects.usable().select_related("user")
    returns them, from one SQL query built once per process (``_usable_token_sql``) and prepared
    once per connection (evalproject.prepared): every API request runs it, and the ORM spent
    four times the query's own cost compiling it. Validity is read from the database, so a
    revocation, an expiry or a deactivated user counts from the very next request; the one
    caller that keeps a result (gates_app.api.memo, a deploy token's poll of a check) forgets it
    when PostgreSQL notifies a change.
    """
    return authenticate_secret_with(secret, None)[0]


def authenticate_secret_with(
    secret: str, lookahead: Lookahead | None
) -> tuple[DeployToken | None, tuple[Any, ...] | None]:
    """``authenticate_secret``, plus the ``lookahead`` columns of the same row (None without a
    usable token for this secret)."""
    parts = secret.split("_", 2)  # the random part may itself contain "_"
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None, None
    conn = connections[DEFAULT_DB_ALIAS]
    now = timezone.now()
    token, extra = _usable_token(conn, parts[1], now, lookahead)
    if token is None or not hmac.compare_digest(token.secret_hash, _hash(secret)):
        return None, None
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_GRANULARITY:
        with conn.cursor() as cursor:
            cursor.execute(_last_used_sql(conn.vendor), [conn.ops.adapt_datetimefield_value(now), token.pk])
        token.last_used_at = now
    return token, extra


def _usable_token(
    conn: BaseDatabaseWrapper, prefix: str, now: datetime, lookahead: Lookahead | None
) -> tuple[DeployToken | None, tuple[Any, ...] | None]:
    sql, params = _usable_token_sql(conn.vendor), [prefix, conn.ops.adapt_datetimefield_value(now)]
    if lookahead is not None:
        select, joins, where = sql
        sql = (f"{select}, {lookahead.columns}", f"{joins} {lookahead.join}", where)
        params = [*lookahead.params, *params]  # the join's placeholders come before the WHERE's
    with prepared_cursor() as cursor:
        cursor.execute(" ".join(sql), params)
        row = cursor.fetchone()  # the prefix is unique: one row at most
    if row is None:
        return None, None
    token_fields, user_fields = _token_fields(), _user_fields()
    token = _instance(conn, token_fields, row[: len(token_fields)])
    user_row = row[len(token_fields) : len(token_fields) + len(user_fields)]
    user = None if user_row[0] is None else _instance(conn, user_fields, user_row)
    DeployToken._meta.get_field("user").set_cached_value(token, user)  # as select_related does
    return token, (tuple(row[len(token_fields) + len(user_fields) :]) if lookahead else None)


@functools.cache
def _token_fields() -> tuple[Field, ...]:
    return tuple(DeployToken._meta.concrete_fields)


@functools.cache
def _user_fields() -> tuple[Field, ...]:
    return tuple(DeployToken._meta.get_field("user").related_model._meta.concrete_fields)


@functools.cache
def _usable_token_sql(vendor: str) -> tuple[str, str, str]:
    """A token by prefix, with its user's columns, as (select list, FROM and joins, WHERE); the
    WHERE is DeployToken.objects.usable() (not revoked, not expired at the given time), pinned
    to it by tests/gates/test_fast_check_path.py."""
    qn, meta = connection.ops.quote_name, DeployToken._meta
    user_fk = meta.get_field("user")
    columns = [f"t.{qn(f.column)}" for f in _token_fields()] + [f"u.{qn(f.column)}" for f in _user_fields()]
    prefix, revoked, expires = (qn(meta.get_field(f).column) for f in ("prefix", "revoked_at", "expires_at"))
    return (
        f"SELECT {', '.join(columns)}",
        f"FROM {qn(meta.db_table)} t "
        f"LEFT OUTER JOIN {qn(user_fk.related_model._meta.db_table)} u "
        f"ON u.{qn(user_fk.target_field.column)} = t.{qn(user_fk.column)}",
        f"WHERE t.{prefix} = %s AND t.{revoked} IS NULL AND (t.{expires} IS NULL OR t.{expires} > %s)",
    )


@functools.cache
def _last_used_sql(vendor: str) -> str:
    qn, meta = connection.ops.quote_name, DeployToken._meta
    last_used = qn(meta.get_field("last_used_at").column)
    return f"UPDATE {qn(meta.db_table)} SET {last_used} = %s WHERE {qn(meta.pk.column)} = %s"


def _instance(conn: BaseDatabaseWrapper, fields: tuple[Field, ...], values: Sequence[Any]) -> Any:
    """A model instance as the ORM builds one from a row: converted values, then Model.from_db."""
    return fields[0].model.from_db(conn.alias, [f.attname for f in fields], db_values(conn, fields, values))


def db_values(conn: BaseDatabaseWrapper, fields: tuple[Field, ...], values: Sequence[Any]) -> list[Any]:
    """Raw column values as the ORM loads ``fields`` from them: through the backend's and the
    fields' converters (JSON decoded; on SQLite, datetimes made aware and 0/1 made booleans)."""
    values = list(values)
    for i in _converted_columns(conn.vendor, fields):
        col = fields[i].get_col(fields[i].model._meta.db_table)
        for converter in conn.ops.get_db_converters(col) + col.get_db_converters(conn):
            values[i] = converter(values[i], col, conn)
    return values


@functools.cache
def _converted_columns(vendor: str, fields: tuple[Field, ...]) -> tuple[int, ...]:
    """Which of ``fields`` have a converter on this database (on PostgreSQL: JSON fields only)."""
    conn = connections[DEFAULT_DB_ALIAS]
    cols = [f.get_col(f.model._meta.db_table) for f in fields]
    return tuple(
        i for i, col in enumerate(cols) if conn.ops.get_db_converters(col) + col.get_db_converters(conn)
    )


@transaction.atomic
def revoke_token(token: DeployToken, *, actor: AbstractBaseUser | None, reason: str) -> DeployToken:
    """Revoke a token; it stops working at once (the API forgets what it kept of it when
    PostgreSQL notifies the change: gates_app.api.memo) and stays listed for the audit trail."""
    token = DeployToken.objects.select_for_update().get(pk=token.pk)
    if not may_manage(token, actor):
        raise PermissionDenied("Only the token's user, an owner of its gates or a superuser revokes it.")
    if not reason or not reason.strip():
        raise ValidationError({"reason": "Say why the token is revoked."})
    if token.revoked_at is not None:
        raise ValidationError(f"Token {token.name} is already revoked.")
    token.revoked_at = timezone.now()
    token.revoked_by = actor
    token.revoke_reason = reason.strip()
    token.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
    record_event(
        Action.TOKEN_REVOKED,
        actor=actor,
        obj=token,
        reason=token.revoke_reason,
        details={"token": token.identity()},
    )
    return token
