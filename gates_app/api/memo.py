"""A deploy token's poll of a check, answered from this process's memory while PostgreSQL says
that nothing it depends on has changed.

Deploy scripts poll ``GET /api/v1/checks/{id}/`` with the same token, again and again, and
every poll reads the same row: the token (revoked? expired? which gates?), the check's gate
(active?) and the check's state (gates_app.api.bodies). This module keeps that row per token
and check, and answers from it only while three things hold:

- Every table the row is read from (deploy tokens, their gates, gates, checks, decisions) has
  a trigger that sends ``NOTIFY evalgate_api_cache`` in the transaction that changes it
  (migration 0011), whatever made the change: the admin, the API, a command, raw SQL. The
  notification arrives when that transaction commits; each process holds one connection that
  LISTENs, reads what has arrived before it answers from memory (a poll of its socket, no
  round trip), and forgets everything it kept on any notification. A revocation is therefore
  refused by every process from the moment PostgreSQL delivers its notification, usually
  within a millisecond of the commit, rather than from the commit itself.
- The listening connection is proven to deliver: each process notifies itself every
  ``HEARTBEAT_S`` and answers from memory only while its latest heartbeat came back within
  ``CONFIRMED_S``. A connection that died, hangs or was never opened means reading the
  database, as before, on every request (and a new connection every ``RETRY_S``).
- An entry is younger than the granularity of ``last_used_at`` (gates_app.tokens): after that
  the database is read again, and the token's last use written as before.

Only deploy tokens are kept: a personal token acts as its user, whose roles and status live in
tables this does not watch. On SQLite, or with ``EVALGATE_API_MEMO`` off, nothing is kept.
"""

import contextlib
import logging
import os
import select
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models.base import ModelState
from django.utils import timezone

from gates_app.models import DeployToken
from gates_app.tokens import LAST_USED_GRANULARITY, Lookahead, authenticate_secret_with, token_digest

logger = logging.getLogger(__name__)
CHANNEL = "evalgate_api_cache"
HEARTBEAT_S = 0.5  # how often a process notifies itself to prove its listening connection delivers
CONFIRMED_S = 2.0  # how old that proof may be before memory is no longer trusted
RETRY_S = 5.0  # after a listening connection fails, how long before opening another
KEPT = 4096  # (token, check) rows per process
_BEAT = "beat:"
# Connection parameters Django passes that a plain psycopg connection does not take.
_DJANGO_ONLY = ("cursor_factory", "context", "prepare_threshold", "server_side_binding")


class Listener:
    """This process's LISTEN connection: ``generation()`` reads what has arrived and says which
    generation of memory is current, or None when memory must not be used."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._conn: Any = None
        self._pid = 0
        self._generation = 0
        self._retry_at = 0.0
        self._beats: dict[str, float] = {}  # payload -> when it was sent
        self._beat_n = 0
        self._last_beat = float("-inf")
        self._confirmed_at = float("-inf")  # when the latest heartbeat that came back was sent

    def generation(self) -> int | None:
        now = time.monotonic()
        if self._pid != os.getpid():
            self._forget()  # a forked child shares the parent's socket: never read or close it
        if self._conn is None:
            if now < self._retry_at:
                return None
            try:
                self._open()
            except Exception as exc:
                self._failed(now, "could not listen", exc)
                return None
        try:
            self._drain()
            if now - self._last_beat >= HEARTBEAT_S:
                self._beat(now)
        except Exception as exc:
            self._failed(now, "lost its listening connection", exc)
            return None
        if now - self._confirmed_at > CONFIRMED_S:
            return None
        return self._generation

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):  # it is being given up on either way
                self._conn.close()
        self._forget()

    def _open(self) -> None:
        self._conn = self._connect()
        self._pid = os.getpid()
        # Notifications that arrive while a statement of ours runs are read by psycopg, which
        # hands them here; the ones that arrive between requests are read by _drain.
        self._conn.add_notify_handler(lambda notify: self._arrived(notify.payload))
        self._conn.execute(f"LISTEN {CHANNEL}")
        self._generation += 1  # whatever changed while nobody listened
        self._beat(time.monotonic())

    def _forget(self) -> None:
        self._conn, self._pid = None, os.getpid()
        self._beats.clear()
        self._confirmed_at = float("-inf")
        self._generation += 1

    def _failed(self, now: float, what: str, exc: Exception) -> None:
        logger.warning("API answers read the database: this process %s (%s)", what, exc)
        self.close()
        self._retry_at = now + RETRY_S

    def _beat(self, now: float) -> None:
        self._beat_n += 1
        payload = f"{_BEAT}{os.getpid()}:{self._beat_n}"
        self._beats[payload] = now
        if len(self._beats) > 64:  # beats that never came back: the proof simply ages out
            self._beats.pop(next(iter(self._beats)))
        self._last_beat = now
        self._conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    def _drain(self) -> None:
        """Read the notifications that have arrived, without waiting for any."""
        from psycopg import pq

        pgconn = self._conn.pgconn
        readable, _, _ = select.select([pgconn.socket], [], [], 0)
        if readable:
            pgconn.consume_input()
        if pgconn.status != pq.ConnStatus.OK:
            raise ConnectionError("the listening connection is not open")
        while (notify := pgconn.notifies()) is not None:
            self._arrived(notify.extra.decode())

    def _arrived(self, payload: str) -> None:
        if payload.startswith(_BEAT):
            sent = self._beats.pop(payload, None)
            if sent is not None:
                self._confirmed_at = max(self._confirmed_at, sent)
        else:  # something the kept rows depend on changed
            self._generation += 1


def _connect() -> Any:
    import psycopg

    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    for name in _DJANGO_ONLY:
        params.pop(name, None)
    return psycopg.connect(**params, autocommit=True, connect_timeout=2)


@dataclass(frozen=True)
class _Kept:
    token: DeployToken
    row: tuple[Any, ...] | None
    generation: int
    stored_at: float


_listener = Listener(_connect)
_kept: OrderedDict[tuple[str, tuple[Any, ...]], _Kept] = OrderedDict()
_lock = threading.Lock()  # gthread workers serve requests from several threads


def enabled() -> bool:
    return settings.EVALGATE_API_MEMO and connections[DEFAULT_DB_ALIAS].vendor == "postgresql"


def authenticate(secret: str, lookahead: Lookahead) -> tuple[DeployToken | None, tuple[Any, ...] | None]:
    """``authenticate_secret_with(secret, lookahead)``, from memory when nothing it read can
    have changed since (see the module's docstring)."""
    now = time.monotonic()
    key = (token_digest(secret), lookahead.params)
    with _lock:
        generation = _listener.generation()
        if generation is None:
            _kept.clear()
        else:
            kept = _kept.get(key)
            if kept is not None and _usable(kept, generation, now):
                _kept.move_to_end(key)
                return _copy(kept.token), kept.row
    token, row = authenticate_secret_with(secret, lookahead)
    if generation is not None and token is not None and token.user_id is None:
        with _lock:
            if _listener_generation_unchanged(generation):
                _kept[key] = _Kept(_copy(token), row, generation, now)
                _kept.move_to_end(key)
                while len(_kept) > KEPT:
                    _kept.popitem(last=False)
    return token, row


def _copy(token: DeployToken) -> DeployToken:
    """A token instance of its own for each request (what a view sets on it stays there): its
    fields copied, as ``copy.copy`` does, without the pickling protocol's cost."""
    clone = DeployToken.__new__(DeployToken)
    clone.__dict__.update(token.__dict__)
    clone.__dict__.pop("_prefetched_objects_cache", None)
    clone.scopes = list(token.scopes)  # the one mutable field a request reads
    clone._state = ModelState()
    clone._state.db, clone._state.adding = token._state.db, False
    clone._state.fields_cache = dict(token._state.fields_cache)
    return clone


def _usable(kept: _Kept, generation: int, now: float) -> bool:
    if kept.generation != generation or now - kept.stored_at >= LAST_USED_GRANULARITY.total_seconds():
        return False
    expires = kept.token.expires_at
    return expires is None or expires > timezone.now()


def _listener_generation_unchanged(generation: int) -> bool:
    """Whether no notification has arrived since ``generation`` was read: a change committed
    while the row was being read may or may not be in it, so it is not kept."""
    return _listener.generation() == generation


def forget() -> None:
    """Drop everything this process kept and its listening connection (tests; shutdown)."""
    with _lock:
        _kept.clear()
        _listener.close()
