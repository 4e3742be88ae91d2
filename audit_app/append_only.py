"""A migration operation: on PostgreSQL, a trigger refuses UPDATE and DELETE on a table.

The audit log and the decision tables (approvals, overrides, sign-offs) are append-only;
the services never update them, and this makes the database refuse it too, whoever asks.
Other databases get nothing here: there, ``manage.py verify_audit`` is the guard.
"""

from typing import Any

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION evalgate_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'evalgate: % on % refused: the table is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""


def _forwards(tables: tuple[str, ...]) -> Any:
    def forwards(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        schema_editor.execute(FUNCTION, params=None)  # no placeholders: RAISE uses %
        for table in tables:
            schema_editor.execute(
                f'CREATE TRIGGER "{table}_append_only" BEFORE UPDATE OR DELETE ON "{table}" '
                "FOR EACH ROW EXECUTE FUNCTION evalgate_refuse_change()"
            )

    return forwards


def _backwards(tables: tuple[str, ...]) -> Any:
    def backwards(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in tables:
            schema_editor.execute(f'DROP TRIGGER IF EXISTS "{table}_append_only" ON "{table}"')

    return backwards


def AppendOnly(*tables: str) -> migrations.RunPython:
    return migrations.RunPython(_forwards(tables), _backwards(tables))
