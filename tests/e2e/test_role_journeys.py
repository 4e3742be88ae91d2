"""Issue 11: each role's daily work through the decision buttons and the Waiting for me page,
clicked in a real browser; each journey asserts what the person sees.

Screenshots go to test-artifacts/screenshots/, or to EVALGATE_SCREENSHOTS_DIR when set
(`EVALGATE_SCREENSHOTS_DIR=docs/screenshots pytest tests/e2e/test_role_journeys.py` refreshes
the README's pictures).
"""

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import Group

from datasets_app import services as datasets
from datasets_app.choices import CaseStatus, Tier
from datasets_app.models import Case
from gates_app.models import Check, CheckDecision
from gates_app.services import request_check
from grading_app import services as grading
from tests.e2e.conftest import REPO, login, messages, submit
from tests.factories import (
    make_dataset,
    make_endpoint,
    make_failure_class,
    make_grader,
    make_rubric_version,
    make_scenario,
    make_user,
    outputs_for,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e
WAITING = "/admin/waiting/"


def shots() -> Path:
    path = Path(os.environ.get("EVALGATE_SCREENSHOTS_DIR") or REPO / "test-artifacts" / "screenshots")
    path = path if path.is_absolute() else REPO / path
    path.mkdir(parents=True, exist_ok=True)
    return path


def press(page: "Page", decision: str, reason: str = "") -> None:
    """A decision button on an object page, then its confirmation with the reason."""
    submit(page, f"#evalgate-decisions a[data-decision='{decision}']")
    page.wait_for_selector("#evalgate-confirm")
    if reason:
        page.fill("#id_reason", reason)
    submit(page, "#evalgate-confirm input[type=submit]")


def decisions(page: "Page") -> set[str]:
    return set(
        page.locator("#evalgate-decisions a").evaluate_all("(links) => links.map(a => a.dataset.decision)")
    )


def waiting_count(page: "Page", key: str) -> int:
    page.goto(WAITING)
    return int(page.locator(f"#waiting-{key} .count").inner_text())


def trusted_draft(dataset, key: str, author) -> Case:
    return datasets.add_case(
        dataset=dataset,
        key=key,
        failure_class=make_failure_class(),
        input={"messages": [{"role": "user", "content": f"{key}: can I get a refund after 40 days?"}]},
        expected={"answer": "No"},
        tier=Tier.TRUSTED,
        actor=author,
    )


def test_an_expert_adds_a_case_and_submits_it_with_the_button(page: "Page") -> None:
    make_user("erin", roles=("Domain expert",), is_staff=True)
    dataset = make_dataset("refunds")
    failure_class = make_failure_class("factual")
    login(page, "erin")
    page.goto("/admin/datasets_app/case/add/")
    assert "null" not in page.locator("#id_expected").input_value()
    page.select_option("#id_dataset", value=str(dataset.pk))
    page.fill("#id_key", "refund-after-40-days")
    page.select_option("#id_failure_class", value=str(failure_class.pk))
    page.select_option("#id_tier", value=Tier.TRUSTED)
    page.fill("#id_user_message", "Can I get a refund after 40 days?")
    page.fill("#id_answer", "No")
    submit(page, "input[name=_continue]")

    assert decisions(page) == {"submit"}  # an expert submits; auditing is someone else's
    press(page, "submit")

    assert messages(page, "success") == ["Submit for review: done for refund-after-40-days."]
    assert Case.objects.get(key="refund-after-40-days").status == CaseStatus.IN_REVIEW
    assert decisions(page) == set()


def test_a_reviewer_returns_one_case_with_a_note_and_audits_another(page: "Page") -> None:
    expert = make_user("erin", roles=("Domain expert",), is_staff=True)
    make_user("rachel", roles=("Reviewer",), is_staff=True)
    dataset = make_dataset("refunds")
    first = datasets.submit_case(trusted_draft(dataset, "refund-01", expert), actor=expert)
    second = datasets.submit_case(trusted_draft(dataset, "refund-02", expert), actor=expert)

    login(page, "rachel")
    assert "waiting for me: 2" in page.locator("#evalgate-waiting").inner_text().lower()
    assert waiting_count(page, "audit") == 2
    submit(page, "#waiting-audit a:text('refund-01')")
    assert decisions(page) == {"audit", "return"}
    press(page, "return", "Which policy says 30 days? Cite it in expected.")
    assert Case.objects.get(pk=first.pk).status == CaseStatus.DRAFT
    assert waiting_count(page, "audit") == 1

    submit(page, "#waiting-audit a:text('refund-02')")
    press(page, "audit", "Matches the refund policy page.")
    second.refresh_from_db()
    assert (second.status, second.audited_by.username) == (CaseStatus.ACTIVE, "rachel")
    assert waiting_count(page, "audit") == 0

    login(page, "erin")
    page.goto(WAITING)
    returned = page.locator("#waiting-returned").inner_text()
    assert "refund-01" in returned and "rachel: Which policy says 30 days? Cite it in expected." in returned


def test_a_rubric_owner_signs_off_a_colleagues_version_from_its_page(page: "Page") -> None:
    owner = make_user("oscar", roles=("Rubric owner",), is_staff=True)
    version = make_rubric_version(make_endpoint("http://127.0.0.1:9/v1"), approved=False, owner=owner)
    grading.submit_rubric_version(version, actor=version.author)

    login(page, "oscar")
    assert waiting_count(page, "sign_off") == 1
    submit(page, "#waiting-sign_off a")
    assert decisions(page) == {"approve", "reject"}
    assert "Any owner of the rubric except its author: oscar." in page.content()
    press(page, "approve", "Matches the tone guide.")

    version.refresh_from_db()
    assert version.state == "approved"
    assert "Matches the tone guide." in page.locator(".field-events").inner_text()
    assert waiting_count(page, "sign_off") == 0


@pytest.fixture
def gate_with_checks(django_capture_on_commit_callbacks):
    s = make_scenario()
    approver = make_user("april", roles=("Release approver",), is_staff=True)
    s["gate"].approvers.add(approver)
    s["owner"].username = "gus"
    s["owner"].is_staff = True
    s["owner"].set_password("pw-gus")
    s["owner"].save()
    s["owner"].groups.add(Group.objects.get(name="Gate owner"))
    with django_capture_on_commit_callbacks(execute=True):
        s["warn"], _ = request_check(
            gate=s["gate"], candidate="v2.3.1", outputs=outputs_for(s["cases"], latency_ms=5000)
        )
        s["fail"], _ = request_check(
            gate=s["gate"], candidate="v2.4.0", outputs=outputs_for(s["cases"], "Yes")
        )
    return s


def test_an_approver_approves_a_warn_from_the_check_page_and_sees_the_trail(
    page: "Page", gate_with_checks
) -> None:
    warn = gate_with_checks["warn"]
    login(page, "april")
    assert waiting_count(page, "approve") == 1
    page.screenshot(path=str(shots() / "waiting-page.png"), full_page=True)
    submit(page, "#waiting-approve a")
    assert decisions(page) == {"approve"}
    rules = page.locator("#rule-table").inner_text()
    assert "latency budget" in rules and "FAIL" in rules and "2000" in rules

    press(page, "approve", "p95 latency is the cold cache after the deploy")

    trail = page.locator("#approval-trail").inner_text()
    assert "april" in trail and "p95 latency is the cold cache after the deploy" in trail
    assert Check.objects.get(pk=warn.pk).release_allowed is True
    assert waiting_count(page, "approve") == 0
    page.goto(f"/admin/gates_app/check/{warn.pk}/history/")
    history = page.locator("#check-history").inner_text()
    assert "check.requested" in history and "check.decided" in history and "check.approved" in history


def test_an_owner_sees_the_failing_cases_of_a_rule_and_overrides_the_fail(
    page: "Page", gate_with_checks
) -> None:
    failed = gate_with_checks["fail"]
    login(page, "gus")
    assert waiting_count(page, "blocked") == 1
    submit(page, "#waiting-blocked a")
    summary = page.locator(".rule-cases summary").first
    assert summary.inner_text() == "Cases behind this rule: 4 failed, 0 undecided"
    summary.click()
    cases = page.locator(".rule-case-list").first.inner_text()
    assert "t0 failed: expected 'no', got 'yes'" in cases
    page.wait_for_timeout(800)  # charts fit their boxes once the page has loaded
    page.screenshot(path=str(shots() / "check-page.png"), full_page=True)
    assert decisions(page) == {"override"}

    press(page, "override", "Hotfix for the outage; the refund answers are fixed in v2.4.1")

    assert Check.objects.get(pk=failed.pk).release_allowed is True
    decision = CheckDecision.objects.get(gate_check=failed)
    assert (decision.kind, decision.actor_username) == ("override", "gus")
    assert "Hotfix for the outage" in page.locator("#approval-trail").inner_text()
    assert waiting_count(page, "blocked") == 0
    assert make_grader  # (the scenario's grader decided the rule)


def test_a_rubric_owner_and_a_gate_owner_create_their_objects_in_their_own_name(page: "Page"):
    """Admin walk H1: the Owner field asked the user autocomplete, which answers 403 to every
    role, so only superusers could create rubrics and gates. It is a plain list now."""
    make_user("rita", roles=("Rubric owner",), is_staff=True)
    make_user("gus", roles=("Gate owner",), is_staff=True)
    make_dataset("support")

    login(page, "rita")
    page.goto("/admin/grading_app/rubric/add/")
    assert page.locator("#id_owner option:checked").inner_text() == "rita"  # chosen for her
    page.fill("#id_slug", "tone")
    page.fill("#id_name", "Tone")
    submit(page, "input[name=_save]")
    assert messages(page, "success") and not page.locator(".errornote").count()

    login(page, "gus")
    page.goto("/admin/gates_app/gate/add/")
    owners = page.locator("#id_owner option").all_inner_texts()
    assert [o for o in owners if not o.startswith("-")] == ["gus"]  # only who may own a gate
    page.fill("#id_slug", "release")
    page.fill("#id_name", "Release")
    page.select_option("#id_dataset", label="support")
    submit(page, "input[name=_save]")
    assert messages(page, "success") and not page.locator(".errornote").count()
