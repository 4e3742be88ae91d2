"""A chunk's write commits without waiting for the WAL flush (PostgreSQL); the verdict never
does. Commits are real here (a transactional test): SET LOCAL must not outlive the chunk's
transaction, or the finaliser's verdict would be written asynchronously too."""

from django.db import connection
from django.db.backends.signals import connection_created

from gates_app.models import Check
from gates_app.services import request_check
from grading_app.choices import ChunkStatus
from tests.factories import make_scenario, outputs_for


def test_chunks_commit_asynchronously_and_the_verdict_synchronously(postgres_url, settings):
    settings.EVALGATE_CODE_CHUNK_SIZE = 2
    scenario = make_scenario(n_trusted=3, n_monitoring=2)
    seen: dict[str, list[str]] = {"chunk": [], "verdict": []}

    def watch(execute, sql, params, many, context):
        table = (
            "chunk"
            if sql.startswith('UPDATE "grading_app_runchunk" SET "status"')
            and (ChunkStatus.DONE in params or ChunkStatus.RUNNING in params)
            else "verdict"
            if sql.startswith('UPDATE "gates_app_check"') and "finaliser" not in sql
            else None
        )
        if table:
            mode = context["connection"].connection.execute("SHOW synchronous_commit").fetchone()[0]
            seen[table].append(mode)
        return execute(sql, params, many, context)

    def watch_new(sender, connection, **kwargs):  # the embedded threads' own connections
        connection.execute_wrappers.append(watch)

    connection_created.connect(watch_new)
    try:
        with connection.execute_wrapper(watch):
            check, _ = request_check(
                gate=scenario["gate"], candidate="v1", outputs=outputs_for(scenario["cases"])
            )
    finally:
        connection_created.disconnect(watch_new)
    check = Check.objects.get(pk=check.pk)
    assert check.verdict == "pass" and check.decided_at is not None
    assert seen["chunk"] == ["off"] * 6  # 5 cases in chunks of 2: each starts, then writes
    assert seen["verdict"] and set(seen["verdict"]) == {"on"}
    assert connection.connection.execute("SHOW synchronous_commit").fetchone()[0] == "on"
