"""Hot queries as server-side prepared statements on PostgreSQL.

Every verdict request runs the same one or two small queries (the token, the check's state).
PostgreSQL spent longer planning them than running them (0.35 ms of planning against 0.07 ms
of execution for the check's state), and Django's cursors bind parameters on the client, so
nothing of a query's plan is kept between requests. ``prepared_cursor()`` gives a cursor that
binds on the server: psycopg prepares a query it has run ``prepare_threshold`` times on that
connection and from then on sends only its parameters, and PostgreSQL reuses the plan.

The cursor goes through Django's cursor wrappers (query logging, ``execute_wrapper``, error
translation), so query-count tests and debugging see these queries as any other. Django's own
cursors stay client-bound: only queries run through this cursor are ever prepared.

Prepared statements live in a server session. Behind a pooler in transaction mode that does not
track them (PgBouncer before 1.21, or without ``max_prepared_statements``), a statement may
reach a session that never prepared it: set ``EVALGATE_DB_PREPARED_STATEMENTS=false`` there.
"""

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper


class _LoggedCursor(CursorDebugWrapper):
    """Logs a server-bound query as Django logs its own (parameters inlined): Django reads the
    text from psycopg's client-side binding, which a server-bound cursor does not keep."""

    def execute(self, sql: str, params: Any = None) -> Any:
        with self.debug_sql(self.db.ops.compose_sql(sql, params), params):
            return CursorWrapper.execute(self, sql, params)


def prepared_cursor(alias: str = DEFAULT_DB_ALIAS) -> CursorWrapper:
    """A cursor whose queries PostgreSQL plans once per connection; elsewhere (SQLite, or with
    prepared statements switched off) Django's ordinary cursor."""
    conn = connections[alias]
    if conn.vendor != "postgresql" or conn.settings_dict["OPTIONS"].get("prepare_threshold") is None:
        return conn.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor  # needs psycopg

    conn.close_if_health_check_failed()
    conn.ensure_connection()
    conn.validate_thread_sharing()
    with conn.wrap_database_errors:
        cursor = ServerBindingCursor(conn.connection)  # Django's own cursors bind on the client
    return _LoggedCursor(cursor, conn) if conn.queries_logged else conn.make_cursor(cursor)
