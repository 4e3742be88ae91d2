"""Triggers that NOTIFY evalgate_api_cache when anything a kept API answer read changes
(gates_app.api.memo): deploy tokens (but their last use), the tokens' gates, gates, checks and
decisions. On PostgreSQL only; elsewhere nothing is kept, so nothing needs telling."""

from django.db import migrations

FUNCTION = "evalgate_api_cache_notify"
CHANNEL = "evalgate_api_cache"


def _tables(apps):
    token = apps.get_model("gates_app", "DeployToken")
    return {
        "token": token._meta.db_table,
        "watched": [
            token._meta.get_field("gates").remote_field.through._meta.db_table,
            apps.get_model("gates_app", "Gate")._meta.db_table,
            apps.get_model("gates_app", "Check")._meta.db_table,
            apps.get_model("gates_app", "CheckDecision")._meta.db_table,
        ],
    }


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    qn = schema_editor.quote_name
    tables = _tables(apps)
    schema_editor.execute(
        f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME); RETURN NULL; END $$"
    )
    for table in tables["watched"]:
        schema_editor.execute(
            f"CREATE TRIGGER {FUNCTION} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {qn(table)} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )
    token = qn(tables["token"])
    # Every API call may write a token's last use (once a minute): that changes no answer.
    schema_editor.execute(
        f"CREATE TRIGGER {FUNCTION}_update AFTER UPDATE ON {token} FOR EACH ROW "
        f"WHEN ((to_jsonb(OLD) - 'last_used_at') IS DISTINCT FROM (to_jsonb(NEW) - 'last_used_at')) "
        f"EXECUTE FUNCTION {FUNCTION}()"
    )
    schema_editor.execute(
        f"CREATE TRIGGER {FUNCTION} AFTER INSERT OR DELETE OR TRUNCATE ON {token} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    qn = schema_editor.quote_name
    tables = _tables(apps)
    for table in [*tables["watched"], tables["token"]]:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {FUNCTION} ON {qn(table)}")
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {FUNCTION}_update ON {qn(tables['token'])}")
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")


class Migration(migrations.Migration):
    dependencies = [("gates_app", "0010_production_rules")]

    operations = [migrations.RunPython(create, drop)]
