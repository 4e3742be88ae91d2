"""Writing many rows fast on PostgreSQL: COPY into a temporary table, then one INSERT ... SELECT.

The ORM's bulk_create builds one statement of rows x columns parameters and prepares every
value through the query compiler; for the tables that take thousands of rows a second
(production traces, their grades) that is most of the cost. Here each column's value is what
the ORM would write (the row's value, else the field's default; the time for ``auto_now_add``;
JSON as the field encodes it, None as SQL NULL), sent with COPY, and moved into the table in
one statement that can skip conflicting rows and return what it wrote.
"""

import functools
import json
from typing import Any

from django.db import connection, models
from django.utils import timezone


@functools.cache
def _plan(model: type[models.Model]) -> tuple[tuple[str, str, Any, Any, bool], ...]:
    """Per column (primary key aside): (column, key in a row, default, JSON dumps or None, auto_now_add)."""
    plan = []
    for column in model._meta.concrete_fields:
        if column.primary_key:
            continue
        dumps = None
        if isinstance(column, models.JSONField):
            dumps = functools.partial(json.dumps, cls=column.encoder)
        auto_now = getattr(column, "auto_now_add", False) or getattr(column, "auto_now", False)
        plan.append((column.column, column.attname, column.get_default(), dumps, auto_now))
    return tuple(plan)


def copy_insert(
    model: type[models.Model],
    rows: list[dict[str, Any]],
    *,
    skip_conflicts_on: tuple[str, ...] = (),
    returning: tuple[str, ...] = (),
    now: Any = None,
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (fields by attribute name: ``source_id``, not ``source``) into ``model``'s
    table; rows conflicting on ``skip_conflicts_on`` are skipped. Returns the ``returning``
    columns of the rows written. PostgreSQL only: callers keep the ORM path for other databases.
    """
    if connection.vendor != "postgresql":
        raise NotImplementedError("copy_insert needs PostgreSQL")
    if not rows:
        return []
    plan = _plan(model)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column) for column, *_ in plan)
    table = quote(model._meta.db_table)
    now = now or timezone.now()

    def copy_rows(copy: Any, ids: list[int] | None) -> None:
        for n, row in enumerate(rows):
            values = [] if ids is None else [ids[n]]
            for _, name, default, dumps, auto_now in plan:
                value = now if auto_now else row.get(name, default)  # as pre_save() sets them
                if dumps is not None and value is not None and not isinstance(value, Dumped):
                    value = dumps(value)
                values.append(value)
            copy.write_row(values)

    pk = model._meta.pk.column
    with connection.cursor() as cursor:
        if not skip_conflicts_on and set(returning) <= {pk, *(column for column, *_ in plan)}:
            # Nothing to skip, and what is returned is known here once the primary keys are
            # drawn from the table's sequence: COPY straight into the table (a conflict fails
            # the whole write, as the INSERT below would), no staging copy of every row.
            ids = None
            if returning:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                    [model._meta.db_table, pk, len(rows)],
                )
                ids = [pk_value for (pk_value,) in cursor.fetchall()]
            into = f"{quote(pk)}, {columns}" if ids is not None else columns
            # The driver's COPY is under Django's error wrapper, so a violated constraint is an
            # IntegrityError here as it is from the ORM.
            with (
                connection.wrap_database_errors,
                cursor.cursor.copy(f"COPY {table} ({into}) FROM STDIN") as copy,
            ):
                copy_rows(copy, ids)
            if not returning:
                return []
            named = {column: (name, default) for column, name, default, *_ in plan}
            return [
                tuple(ids[n] if column == pk else row.get(*named[column]) for column in returning)
                for n, row in enumerate(rows)
            ]
        staging = quote(f"incoming_{model._meta.db_table}")
        # The staging table lives as long as the connection; its rows only within this call.
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} AS SELECT {columns} FROM {table} WITH NO DATA"
        )
        with cursor.cursor.copy(f"COPY {staging} ({columns}) FROM STDIN") as copy:
            copy_rows(copy, None)
        statement = f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging}"
        if skip_conflicts_on:
            statement += f" ON CONFLICT ({', '.join(quote(c) for c in skip_conflicts_on)}) DO NOTHING"
        if returning:
            statement += f" RETURNING {', '.join(quote(c) for c in returning)}"
        cursor.execute(statement)
        written = cursor.fetchall() if returning else []
        cursor.execute(f"TRUNCATE {staging}")
    return written


def fields_of(obj: models.Model) -> dict[str, Any]:
    """An unsaved instance's column values by attribute name (primary key aside), for copy_insert:
    what its __init__ set, defaults included."""
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields if not f.primary_key}


ANALYZE_AFTER_ROWS = 10_000


def refresh_statistics(model: type[models.Model], rows_written: int) -> None:
    """After a bulk write of many rows, ANALYZE the table (PostgreSQL) so the next queries plan on
    its new size, not on the statistics from before: autovacuum gets to it within minutes, but a
    check started right after a 100,000-case import planned as if the table were small (looking
    its 100,000 keys up by sequential scans: 55 s instead of 10 s for the same request)."""
    if connection.vendor == "postgresql" and rows_written >= ANALYZE_AFTER_ROWS:
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


class Dumped(str):
    """A JSON column's value already encoded (copy_insert sends it as it is)."""


def copy_insert_with_history(
    model: type[models.Model],
    rows: list[dict[str, Any]],
    *,
    match_on: tuple[str, ...],
    user: Any,
    change_reason: str,
) -> list[models.Model]:
    """``rows`` (fields by attribute name) of a model that django-simple-history tracks, written
    by copy_insert, each with the "+" history row simple_history's bulk_create_with_history
    would write (the tracked fields, now, ``user``, ``change_reason``). Returns the saved
    instances. ``match_on`` are fields unique among the rows that give each written row back
    its primary key. PostgreSQL only."""
    if not rows:
        return []
    now = timezone.now()
    fields = model._meta.concrete_fields
    full = []
    for row in rows:  # every column's value, as the ORM would write it (see copy_insert)
        values = {}
        for field in fields:
            if field.primary_key:
                continue
            if getattr(field, "auto_now_add", False) or getattr(field, "auto_now", False):
                values[field.attname] = now
            else:
                values[field.attname] = row[field.attname] if field.attname in row else field.get_default()
        full.append(values)
    json_columns = [f.attname for f in fields if isinstance(f, models.JSONField)]
    encoders = {f.attname: f.encoder for f in fields if isinstance(f, models.JSONField)}
    encoded = []
    for values in full:  # each JSON value encoded once, for the row and its history row
        out = dict(values)
        for name in json_columns:
            if out[name] is not None:
                out[name] = Dumped(json.dumps(out[name], cls=encoders[name]))
        encoded.append(out)
    written = copy_insert(model, encoded, returning=(model._meta.pk.column, *match_on), now=now)
    by_match = {tuple(values): pk for pk, *values in written}
    pks = [by_match[tuple(values[name] for name in match_on)] for values in full]
    history = model.history.model
    tracked = [f.attname for f in history.tracked_fields]
    pk_name = model._meta.pk.attname
    history_rows = [
        {
            **{name: pk if name == pk_name else values[name] for name in tracked},
            "history_date": now,
            "history_user_id": getattr(user, "pk", None),
            "history_change_reason": change_reason,
            "history_type": "+",
        }
        for pk, values in zip(pks, encoded, strict=True)
    ]
    copy_insert(history, history_rows, now=now)
    # Positional from_db: the ORM's fast path for building saved instances.
    names = [f.attname for f in fields]
    return [
        model.from_db(connection.alias, names, [pk if n == pk_name else values[n] for n in names])
        for pk, values in zip(pks, full, strict=True)
    ]
