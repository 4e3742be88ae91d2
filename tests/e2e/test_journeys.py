"""The three governance journeys, clicked through the real admin in a real browser.

A domain expert adds and submits a case, a reviewer audits it into the trusted tier; a
rubric owner signs off a colleague's rubric version but not their own; a deploy check warns,
an approver acknowledges it in the admin and the `evalgate` CLI then lets the release go.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from datasets_app.choices import CaseStatus, Tier
from datasets_app.models import Case
from gates_app.choices import DecisionKind, Verdict
from gates_app.models import Check
from grading_app import services as grading
from grading_app.choices import RubricState
from tests.e2e.conftest import confirm, login, messages, run_action, submit
from tests.factories import (
    make_dataset,
    make_endpoint,
    make_failure_class,
    make_scenario,
    make_token,
    make_user,
    outputs_for,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e

EVALGATE = str(Path(sys.executable).parent / "evalgate")  # the installed console script
CASES = "/admin/datasets_app/case/"
RUBRIC_VERSIONS = "/admin/grading_app/rubricversion/"
CHECKS = "/admin/gates_app/check/"


def test_expert_adds_and_submits_a_case_and_a_reviewer_audits_it_into_trusted(page: "Page") -> None:
    expert = make_user("erin", roles=("Domain expert",), is_staff=True)
    reviewer = make_user("rachel", roles=("Reviewer",), is_staff=True)
    dataset = make_dataset("refunds")
    failure_class = make_failure_class("factual")

    login(page, "erin")
    page.goto(f"{CASES}add/")
    page.select_option("#id_dataset", value=str(dataset.pk))
    page.fill("#id_key", "refund-after-40-days")
    page.select_option("#id_failure_class", value=str(failure_class.pk))
    page.select_option("#id_tier", value=Tier.TRUSTED)
    page.fill("#id_user_message", "Can I get a refund after 40 days?")
    page.fill("#id_answer", "No")
    submit(page, "input[name=_save]")
    assert messages(page, "success"), messages(page, "error") or page.locator(".errorlist").all_inner_texts()

    case = Case.objects.get(dataset=dataset, key="refund-after-40-days")
    assert case.status == CaseStatus.DRAFT and case.contributed_by == expert
    assert case.input == {"messages": [{"role": "user", "content": "Can I get a refund after 40 days?"}]}
    assert case.expected == {"answer": "No"}

    run_action(page, CASES, [case.pk], "Submit selected drafts for review")
    assert messages(page, "success") == ["Submitted 1 item(s)."]
    case.refresh_from_db()
    assert case.status == CaseStatus.IN_REVIEW

    # Auditing is a reviewer's job: the expert is not even offered the action.
    page.goto(CASES)
    offered = page.locator("select[name=action] option").all_inner_texts()
    assert "Submit selected drafts for review" in offered
    assert "Audit and activate selected cases" not in offered
    case.refresh_from_db()
    assert case.status == CaseStatus.IN_REVIEW

    login(page, "rachel")
    run_action(page, CASES, [case.pk], "Audit and activate selected cases")
    confirm(page, "Audit and activate")
    assert messages(page, "success") == ["Audit and activate 1 item(s)."]
    case.refresh_from_db()
    assert (case.status, case.tier, case.audited_by) == (CaseStatus.ACTIVE, Tier.TRUSTED, reviewer)


def test_rubric_owner_signs_off_a_colleagues_version_but_not_their_own(page: "Page") -> None:
    owner = make_user("olga", roles=("Rubric owner",), is_staff=True)
    colleague = make_user("colin", roles=("Rubric owner",))
    endpoint = make_endpoint("http://127.0.0.1:9/v1", name="judge")
    rubric = grading.save_rubric(slug="refunds", name="Refund answers", owner=owner)
    theirs = grading.create_rubric_version(
        rubric, actor=colleague, criteria="Says no after 30 days.", endpoint=endpoint, model="j"
    )
    theirs = grading.submit_rubric_version(theirs, actor=colleague)
    mine = grading.create_rubric_version(
        rubric, actor=owner, criteria="Says no after 30 days, politely.", endpoint=endpoint, model="j"
    )
    mine = grading.submit_rubric_version(mine, actor=owner)

    login(page, "olga")
    run_action(page, RUBRIC_VERSIONS, [theirs.pk], "Approve (sign off) selected versions")
    confirm(page, "Approve", reason="Criteria match the refund policy.")
    assert messages(page, "success") == ["Approve 1 item(s)."]
    theirs.refresh_from_db()
    assert theirs.state == RubricState.APPROVED
    assert theirs.events.filter(to_state=RubricState.APPROVED, actor=owner).exists()

    run_action(page, RUBRIC_VERSIONS, [mine.pk], "Approve (sign off) selected versions")
    confirm(page, "Approve")
    errors = messages(page, "error")
    assert len(errors) == 1 and "someone else must sign it off" in errors[0], errors
    mine.refresh_from_db()
    assert mine.state == RubricState.SUBMITTED


def evalgate(live_server: Any, secret: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EVALGATE_URL": live_server.url, "EVALGATE_TOKEN": secret}
    return subprocess.run([EVALGATE, *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_warn_acknowledged_in_the_admin_lets_the_cli_release(
    page: "Page", live_server: Any, tmp_path: Path
) -> None:
    # make_scenario's gate warns when p95 latency exceeds 2000 ms.
    scenario = make_scenario(n_trusted=4, n_monitoring=0)
    gate = scenario["gate"]
    approver = make_user("abel", roles=("Release approver",), is_staff=True)
    gate.approvers.add(approver)
    secret = make_token([gate])
    slow = tmp_path / "slow.jsonl"
    slow.write_text("".join(json.dumps(o) + "\n" for o in outputs_for(scenario["cases"], latency_ms=5000)))
    # Without REDIS_URL the run is graded in the live server's thread when the POST commits,
    # so the check is decided by the time the CLI first asks.
    check_args = ["check", gate.slug, "--candidate", "slow", "--outputs", str(slow)]
    check_args += ["--wait", "--timeout", "60", "--idempotency-key", "deploy-42"]

    warned = evalgate(live_server, secret, *check_args, "--json")
    assert warned.returncode == 3, warned.stdout + warned.stderr
    body = json.loads(warned.stdout)
    assert (body["verdict"], body["release_allowed"]) == ("warn", False)

    login(page, "abel")
    run_action(page, CHECKS, [body["id"]], "Approve (acknowledge) selected warn verdicts")
    confirm(page, "Approve", reason="Cold cache after the deploy; latency recovers in minutes.")
    assert messages(page, "success") == ["Approve 1 item(s)."]
    check = Check.objects.get(pk=body["id"])
    assert (check.verdict, check.release_allowed) == (Verdict.WARN, True)
    decision = check.decisions.get()
    assert (decision.kind, decision.actor) == (DecisionKind.APPROVE, approver)

    # The deploy script retries with the same idempotency key: the same check, now released.
    released = evalgate(live_server, secret, *check_args)
    assert released.returncode == 0, released.stdout + released.stderr
    assert "release allowed: yes" in released.stdout
    assert Check.objects.count() == 1
