"""Issue 10, finding 5: the record of decisions is append-only and tamper-evident.

Every governed act writes one hash-chained audit event in its own transaction; users who acted
are deactivated, never deleted; renames do not change what the record says; on PostgreSQL a
trigger refuses UPDATE and DELETE of the audit and decision tables, and `verify_audit` finds
any edit made behind the application's back.
"""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.urls import reverse

from audit_app.models import AuditEvent
from audit_app.services import record_event, verify_chain
from datasets_app import services as datasets
from datasets_app.models import Case
from gates_app.services import approve_check, cancel_check, override_check, request_check, save_gate
from gates_app.tokens import create_token, revoke_token
from grading_app import services as grading
from tests.factories import (
    make_case,
    make_dataset,
    make_endpoint,
    make_rubric_version,
    make_scenario,
    make_token,
    make_user,
    outputs_for,
)

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the append-only triggers exist on PostgreSQL only"
)


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def decided(gate, outputs, capture, candidate="v1"):
    with capture(execute=True):
        check, _ = request_check(gate=gate, candidate=candidate, outputs=outputs)
    check.refresh_from_db()
    return check


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def test_every_governed_act_writes_an_event_and_the_chain_holds(
    approver, reviewer, django_capture_on_commit_callbacks
):
    s = make_scenario()
    owner = s["owner"]
    s["gate"].approvers.add(approver)
    # cases: audit, retire, restore
    case = make_case(s["dataset"], "extra", auditor=reviewer)
    datasets.retire_case(case, actor=make_user(roles=("Dataset owner",)), reason="duplicate")
    datasets.restore_case(
        Case.objects.get(pk=case.pk), actor=make_user(roles=("Dataset owner",)), reason="no"
    )
    # rubric: submit, approve, reject
    version = make_rubric_version(make_endpoint("http://127.0.0.1:9/v1"))
    draft = grading.create_rubric_version(
        version.rubric, actor=make_user(), criteria="Polite.", endpoint=version.endpoint, model="m"
    )
    grading.submit_rubric_version(draft, actor=draft.author)
    grading.reject_rubric_version(draft, actor=version.rubric.owner, note="too vague")
    # checks: request, decided, approve, override, cancel; tokens: create, revoke
    warn = decided(s["gate"], outputs_for(s["cases"], latency_ms=5000), django_capture_on_commit_callbacks)
    approve_check(warn, actor=approver, reason="cold cache")
    failed = decided(s["gate"], outputs_for(s["cases"], "Yes"), django_capture_on_commit_callbacks, "v2")
    override_check(failed, actor=owner, reason="known flaky case")
    running, _ = request_check(gate=s["gate"], candidate="v3", outputs=outputs_for(s["cases"]))
    token, _ = create_token(name="ci", gates=[s["gate"]], actor=owner)
    cancel_check(running, actor=None, token=token, reason="superseded")
    revoke_token(token, actor=owner, reason="rotated")
    # gate and rule changes; roles
    save_gate(slug=s["gate"].slug, actor=owner, required_approvals=2)
    s["gate"].rules.first().__class__.objects.filter(pk=s["gate"].rules.first().pk)  # no-op read
    approver.groups.add(Group.objects.get(name="Reviewer"))

    recorded = set(actions())
    assert {
        "case.audited",
        "case.retired",
        "case.restored",
        "rubric_version.submitted",
        "rubric_version.approved",
        "rubric_version.rejected",
        "check.requested",
        "check.decided",
        "check.approved",
        "check.overridden",
        "check.cancelled",
        "token.created",
        "token.revoked",
        "gate.changed",
        "gate_rule.changed",
        "role.changed",
    } <= recorded
    report = verify_chain()
    assert (report.problem, report.events) == ("", AuditEvent.objects.count())
    gate_change = AuditEvent.objects.filter(action="gate.changed").order_by("id").last()
    assert (gate_change.actor, gate_change.details["fields"]["required_approvals"]) == (owner, [1, 2])


def test_an_act_that_rolls_back_leaves_no_event(reviewer):
    case = make_case(make_dataset(), "c", active=False)
    before = AuditEvent.objects.count()

    with pytest.raises(RuntimeError), transaction.atomic():
        datasets.audit_case(case, actor=reviewer)
        raise RuntimeError("the request failed after the audit")

    assert AuditEvent.objects.count() == before
    assert Case.objects.get(pk=case.pk).status == "draft"


def test_a_user_who_acted_is_deactivated_never_deleted(client, reviewer):
    case = make_case(make_dataset(), "c", auditor=reviewer)
    # Only history rows point at this one (their user would be blanked, not protected).
    editor = make_user("editor")
    datasets.save_failure_class(slug="tone", name="Tone", actor=editor)

    with pytest.raises(ProtectedError), transaction.atomic():
        reviewer.delete()
    with pytest.raises(ProtectedError, match="deactivate the account"), transaction.atomic():
        editor.delete()

    case.refresh_from_db()
    assert case.audited_by == reviewer
    admin = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    assert client.get(reverse("admin:auth_user_delete", args=[reviewer.pk])).status_code == 403
    newcomer = make_user("newcomer")
    newcomer.delete()  # nobody's record points at them: nothing is lost


def test_renaming_a_user_does_not_rewrite_the_approval_trail(
    api_client, approver, django_capture_on_commit_callbacks
):
    s = make_scenario()
    s["gate"].approvers.add(approver)
    check = decided(s["gate"], outputs_for(s["cases"], latency_ms=5000), django_capture_on_commit_callbacks)
    approve_check(check, actor=approver, reason="cold cache")

    approver.username = "someone-else"
    approver.save()

    body = api_client.get(f"/api/v1/checks/{check.pk}/", **bearer(make_token([s["gate"]]))).json()
    assert [d["by"] for d in body["approval"]["decisions"]] == ["approver"]
    event = AuditEvent.objects.get(action="check.approved")
    assert (event.actor_username, event.actor.username) == ("approver", "someone-else")
    assert verify_chain().problem == ""


def test_a_cancel_by_token_records_the_tokens_identity(api_client):
    s = make_scenario()
    token, secret = create_token(name="deploy-bot", gates=[s["gate"]], actor=s["owner"])
    check, _ = request_check(gate=s["gate"], candidate="v1", outputs=outputs_for(s["cases"]))

    response = api_client.post(
        f"/api/v1/checks/{check.pk}/cancel/", {"reason": "superseded"}, format="json", **bearer(secret)
    )

    assert response.status_code == 200, response.content
    event = AuditEvent.objects.get(action="check.cancelled")
    assert event.details["token"] == {
        "id": token.pk,
        "name": "deploy-bot",
        "prefix": token.prefix,
        "created_by": s["owner"].pk,
    }
    assert event.via.startswith("api POST /api/v1/checks/")


def test_verify_audit_prints_the_head_and_a_recorded_head_catches_a_cut_tail():
    for n in range(3):
        record_event("role.changed", actor=None, details={"n": n})
    out = __import__("io").StringIO()
    call_command("verify_audit", stdout=out)
    head = AuditEvent.objects.order_by("-id").first().hash
    assert out.getvalue().strip() == f"audit log intact: 3 event(s), head {head}"

    record_event("role.changed", actor=None, details={"n": 3})
    call_command("verify_audit", "--head", head, stdout=out)  # the old head is still in the chain
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # a DBA turns the guard off to cut the tail
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE audit_app_auditevent DISABLE TRIGGER USER")
            cursor.execute(
                "DELETE FROM audit_app_auditevent WHERE id >= %s", [AuditEvent.objects.order_by("-id")[1].pk]
            )
            cursor.execute("ALTER TABLE audit_app_auditevent ENABLE TRIGGER USER")
    else:
        AuditEvent.objects.filter(pk__gte=AuditEvent.objects.order_by("-id")[1].pk).delete()
    with pytest.raises(CommandError, match="is not in the chain") as broken:
        call_command("verify_audit", "--head", head)
    assert broken.value.returncode == 1


@on_postgresql
@pytest.mark.parametrize(
    "table", ["audit_app_auditevent", "gates_app_checkdecision", "grading_app_rubricversionevent"]
)
def test_postgresql_refuses_updates_and_deletes_of_the_record(
    table, approver, django_capture_on_commit_callbacks
):
    s = make_scenario()
    s["gate"].approvers.add(approver)
    check = decided(s["gate"], outputs_for(s["cases"], latency_ms=5000), django_capture_on_commit_callbacks)
    approve_check(check, actor=approver, reason="cold cache")
    make_rubric_version(make_endpoint("http://127.0.0.1:9/v1"))
    column = {"audit_app_auditevent": "reason", "gates_app_checkdecision": "reason"}.get(table, "note")

    for statement in (f"UPDATE {table} SET {column} = 'rewritten'", f"DELETE FROM {table}"):
        with (
            pytest.raises((IntegrityError, DatabaseError), match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)


@on_postgresql
def test_verify_audit_names_an_event_edited_behind_the_applications_back_on_postgresql(reviewer):
    for key in ("a", "b", "c"):
        make_case(make_dataset(), key, auditor=reviewer)
    events = list(AuditEvent.objects.filter(action="case.audited").order_by("id"))
    with connection.cursor() as cursor:  # a DBA turns the guard off, edits, turns it on again
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE audit_app_auditevent DISABLE TRIGGER USER")
        cursor.execute("UPDATE audit_app_auditevent SET reason = 'looked fine' WHERE id = %s", [events[1].pk])
        cursor.execute("ALTER TABLE audit_app_auditevent ENABLE TRIGGER USER")

    with pytest.raises(CommandError, match=f"event #{events[1].pk} .* was changed") as broken:
        call_command("verify_audit")
    assert broken.value.returncode == 1


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.parametrize("tamper", ["update", "delete"])
def test_verify_audit_exits_1_naming_the_break_after_raw_sql_on_sqlite(tmp_path, tamper):
    database = tmp_path / "audit.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "DEBUG": "true"}
    env.pop("REDIS_URL", None)
    assert _manage(env, "migrate", "--noinput").returncode == 0
    script = (
        "from audit_app.services import record_event\n"
        "for n in range(4): record_event('role.changed', actor=None, reason=f'event {n}')\n"
    )
    assert _manage(env, "shell", "-c", script).returncode == 0
    intact = _manage(env, "verify_audit")
    assert (intact.returncode, intact.stdout.split(",")[0]) == (0, "audit log intact: 4 event(s)")

    with sqlite3.connect(database) as db:
        second = db.execute("SELECT id FROM audit_app_auditevent ORDER BY id LIMIT 1 OFFSET 1").fetchone()[0]
        if tamper == "update":
            db.execute("UPDATE audit_app_auditevent SET reason = 'quietly rewritten' WHERE id = ?", [second])
        else:
            db.execute("DELETE FROM audit_app_auditevent WHERE id = ?", [second])

    broken = _manage(env, "verify_audit")
    assert broken.returncode == 1
    if tamper == "update":
        assert f"first broken link: event #{second}" in broken.stderr
        assert "was changed after it was written" in broken.stderr
    else:
        assert f"first broken link: event #{second + 1}" in broken.stderr
        assert "does not follow the event before it" in broken.stderr


def test_the_audit_log_admin_is_read_only_and_filterable(client, reviewer, dataset_owner):
    make_case(make_dataset(), "c", auditor=reviewer)
    make_user("reader", roles=("Gate owner",), is_staff=True)
    client.force_login(dataset_owner)
    url = reverse("admin:audit_app_auditevent_changelist")

    page = client.get(url, {"action": "case.audited"})
    assert page.status_code == 200
    assert [e.action for e in page.context["cl"].result_list] == ["case.audited"]
    by_actor = client.get(url, {"actor__id__exact": reviewer.pk})
    assert {e.actor for e in by_actor.context["cl"].result_list} == {reviewer}
    event = AuditEvent.objects.get(action="case.audited")
    detail = client.get(reverse("admin:audit_app_auditevent_change", args=[event.pk]))
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content
    assert client.post(reverse("admin:audit_app_auditevent_delete", args=[event.pk])).status_code == 403
    client.force_login(make_user("outsider", is_staff=True))
    assert client.get(url).status_code == 403


def test_the_audit_log_names_a_deploy_tokens_act_by_the_token_and_its_issuer(admin_client):
    # Admin walk L4: a check requested with a deploy token read "check.requested by system",
    # while the services treat the token's issuer as the requester.
    s = make_scenario()
    s["owner"].username = "u-gate"
    s["owner"].save()
    token, _ = create_token(name="walk-deploy", gates=[s["gate"]], actor=s["owner"])
    request_check(gate=s["gate"], candidate="v1", outputs=outputs_for(s["cases"]), token=token)
    event = AuditEvent.objects.get(action="check.requested")

    listed = admin_client.get(reverse("admin:audit_app_auditevent_changelist")).content.decode()
    page = admin_client.get(reverse("admin:audit_app_auditevent_change", args=[event.pk])).content.decode()

    who = f"deploy token walk-deploy ({token.prefix}), issued by"
    assert f"{who} user {s['owner'].pk}" in listed  # the list names the issuer by id: no query per row
    assert f"{who} u-gate" in page
