"""The release workflow around a verdict: approvals, overrides, baselines, trace deltas, targets,
webhooks and who may change a gate (DESIGN.md sections 5 and 6)."""

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from gates_app.models import Check, CheckDecision, Gate, GateRule
from gates_app.services import approve_check, override_check, request_check, save_gate
from grading_app.services import save_target
from tests.factories import (
    make_case,
    make_dataset,
    make_endpoint,
    make_failure_class,
    make_gate,
    make_grader,
    make_scenario,
    make_token,
    make_user,
    outputs_for,
)
from tests.fake_openai import text

pytestmark = pytest.mark.django_db


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def decided(gate: Gate, outputs: list[dict[str, Any]] | None, capture, candidate: str = "v1") -> Check:
    """Request a check and run its jobs in-process; return it with its verdict decided."""
    with capture(execute=True):
        check, _ = request_check(gate=gate, candidate=candidate, outputs=outputs)
    check.refresh_from_db()
    return check


def post_decision(client, check: Check, kind: str, secret: str, reason: str | None = "looked at it"):
    body = {} if reason is None else {"reason": reason}
    return client.post(f"/api/v1/checks/{check.pk}/{kind}/", body, format="json", **bearer(secret))


def error_code(response, status: int) -> str:
    assert response.status_code == status, response.content
    return response.json()["error"]["code"]


# Approving a warn


def test_a_warn_is_released_only_once_an_approver_acknowledges_it(
    approver, django_capture_on_commit_callbacks
):
    s = make_scenario()
    s["gate"].approvers.add(approver)
    check = decided(s["gate"], outputs_for(s["cases"], latency_ms=5000), django_capture_on_commit_callbacks)
    assert (check.verdict, check.release_allowed) == ("warn", False)

    approve_check(check, actor=approver, reason="latency spike is the cold cache")

    check.refresh_from_db()
    assert check.release_allowed is True
    decision = check.decisions.get()
    assert (decision.kind, decision.actor, decision.reason) == (
        "approve",
        approver,
        "latency spike is the cold cache",
    )


def test_someone_who_is_neither_approver_nor_owner_cannot_approve_a_warn(
    approver, django_capture_on_commit_callbacks
):
    s = make_scenario()  # approver is not among this gate's approvers
    check = decided(s["gate"], outputs_for(s["cases"], latency_ms=5000), django_capture_on_commit_callbacks)

    with pytest.raises(PermissionDenied):
        approve_check(check, actor=approver, reason="fine by me")

    check.refresh_from_db()
    assert check.release_allowed is False
    assert not CheckDecision.objects.exists()


def test_approver_acknowledges_a_warn_over_the_api_with_a_personal_token(
    api_client, approver, gate_owner, django_capture_on_commit_callbacks
):
    s = make_scenario()
    s["gate"].approvers.add(approver)
    check = decided(s["gate"], outputs_for(s["cases"], latency_ms=5000), django_capture_on_commit_callbacks)
    outsider = make_token([], user=gate_owner)  # sees every gate, approves none of them

    assert error_code(post_decision(api_client, check, "approve", outsider), 403) == "forbidden"
    response = post_decision(api_client, check, "approve", make_token([], user=approver), "cold cache")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["verdict"], body["release_allowed"]) == ("warn", True)
    assert body["approval"]["required"] is False
    assert [(d["kind"], d["by"], d["reason"]) for d in body["approval"]["decisions"]] == [
        ("approve", "approver", "cold cache")
    ]


def test_a_warn_is_released_at_once_when_warnings_need_no_approval(django_capture_on_commit_callbacks):
    s = make_scenario(warnings_need_approval=False)

    check = decided(s["gate"], outputs_for(s["cases"], latency_ms=5000), django_capture_on_commit_callbacks)

    assert (check.verdict, check.release_allowed) == ("warn", True)
    assert not check.decisions.exists()


@pytest.mark.parametrize(("answer", "verdict"), [("No", "pass"), ("Yes", "fail")])
def test_approving_a_pass_or_a_fail_is_refused(
    api_client, approver, django_capture_on_commit_callbacks, answer, verdict
):
    s = make_scenario()
    s["gate"].approvers.add(approver)
    check = decided(s["gate"], outputs_for(s["cases"], answer), django_capture_on_commit_callbacks)
    assert check.verdict == verdict

    with pytest.raises(ValidationError):
        approve_check(check, actor=approver, reason="ship it")
    response = post_decision(api_client, check, "approve", make_token([], user=approver))

    assert error_code(response, 400) == "invalid"
    check.refresh_from_db()
    assert check.release_allowed is (verdict == "pass")
    assert not CheckDecision.objects.exists()


# Overriding a fail or inconclusive verdict


@pytest.mark.parametrize(
    ("outputs", "verdict"),
    [
        (lambda cases: outputs_for(cases, "Yes"), "fail"),
        (lambda cases: outputs_for(cases[1:]), "inconclusive"),  # a trusted case is missing
    ],
)
def test_owner_overrides_with_a_reason_that_is_stored_and_shown_in_the_api(
    api_client, django_capture_on_commit_callbacks, outputs, verdict
):
    s = make_scenario()
    check = decided(s["gate"], outputs(s["cases"]), django_capture_on_commit_callbacks)
    assert (check.verdict, check.release_allowed) == (verdict, False)

    response = post_decision(
        api_client, check, "override", make_token([], user=s["owner"]), "  hotfix for the outage; INC-42  "
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["verdict"], body["release_allowed"]) == (verdict, True)
    [shown] = body["approval"]["decisions"]
    assert (shown["kind"], shown["by"], shown["reason"]) == (
        "override",
        s["owner"].username,
        "hotfix for the outage; INC-42",
    )
    stored = CheckDecision.objects.get(gate_check=check)
    assert (stored.kind, stored.actor, stored.reason) == (
        "override",
        s["owner"],
        "hotfix for the outage; INC-42",
    )


def test_approver_other_user_and_deploy_token_cannot_override(
    api_client, approver, gate_owner, django_capture_on_commit_callbacks
):
    s = make_scenario()
    s["gate"].approvers.add(approver)
    check = decided(s["gate"], outputs_for(s["cases"], "Yes"), django_capture_on_commit_callbacks)
    assert check.verdict == "fail"

    for secret in (
        make_token([], user=approver),
        make_token([], user=gate_owner),  # a gate owner, but not of this gate
        make_token([s["gate"]], scopes=["checks:write", "checks:read"]),
    ):
        assert error_code(post_decision(api_client, check, "override", secret), 403) == "forbidden"
    with pytest.raises(PermissionDenied):
        override_check(check, actor=approver, reason="I am sure")

    check.refresh_from_db()
    assert check.release_allowed is False
    assert not CheckDecision.objects.exists()


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_an_override_without_a_reason_is_refused(api_client, django_capture_on_commit_callbacks, reason):
    s = make_scenario()
    check = decided(s["gate"], outputs_for(s["cases"], "Yes"), django_capture_on_commit_callbacks)

    response = post_decision(api_client, check, "override", make_token([], user=s["owner"]), reason)

    assert error_code(response, 400) == "invalid"
    assert "reason" in response.json()["error"]["details"]
    with pytest.raises(ValidationError):
        override_check(check, actor=s["owner"], reason=reason or "")
    check.refresh_from_db()
    assert check.release_allowed is False
    assert not CheckDecision.objects.exists()


def test_owner_cannot_override_a_pass(api_client, django_capture_on_commit_callbacks):
    s = make_scenario()
    check = decided(s["gate"], outputs_for(s["cases"]), django_capture_on_commit_callbacks)

    response = post_decision(api_client, check, "override", make_token([], user=s["owner"]))

    assert error_code(response, 400) == "invalid"
    assert not CheckDecision.objects.exists()


# Baselines and no_regression rules


@pytest.fixture
def regression_gate(db) -> dict[str, Any]:
    """Two high-risk and two normal cases; one block rule: no high-risk case may get worse."""
    owner = make_user()
    dataset = make_dataset(owner=owner)
    failure_class = make_failure_class("safety")
    contributor, auditor = make_user(roles=("Domain expert",)), make_user(roles=("Reviewer",))
    cases = [
        make_case(
            dataset,
            key,
            failure_class=failure_class,
            risk=risk,
            contributor=contributor,
            auditor=auditor,
        )
        for key, risk in [("h1", "high"), ("h2", "high"), ("n1", "normal"), ("n2", "normal")]
    ]
    grader = make_grader()
    rule = {
        "name": "high-risk holds",
        "metric": "pass_rate",
        "grader": grader,
        "scope": {"risk": "high"},
        "mode": "no_regression",
        "strict": True,
        "severity": "block",
    }
    gate = make_gate(dataset, owner=owner, rules=[rule])
    return {"owner": owner, "gate": gate, "cases": cases}


def answers(cases, wrong: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Right answers except for the cases keyed in ``wrong``."""
    return [{"case": c.key, "output": "Yes" if c.key in wrong else "No"} for c in cases]


def test_the_first_check_passes_a_no_regression_rule_and_says_there_is_no_baseline(
    regression_gate, django_capture_on_commit_callbacks
):
    g = regression_gate

    check = decided(g["gate"], answers(g["cases"], wrong=("h1",)), django_capture_on_commit_callbacks)

    assert check.baseline is None
    assert (check.verdict, check.release_allowed) == ("pass", True)
    [result] = check.rule_results
    assert result["outcome"] == "pass"
    assert "no baseline" in result["note"]


def test_one_regressed_high_risk_case_fails_a_strict_no_regression_rule(
    regression_gate, django_capture_on_commit_callbacks
):
    g = regression_gate
    first = decided(g["gate"], answers(g["cases"]), django_capture_on_commit_callbacks, "v1")

    # h1 regresses; the normal-risk cases are out of scope however badly they do.
    second = decided(
        g["gate"], answers(g["cases"], wrong=("h1", "n1", "n2")), django_capture_on_commit_callbacks, "v2"
    )

    assert second.baseline == first
    assert (second.verdict, second.release_allowed) == ("fail", False)
    [result] = second.rule_results
    assert (result["outcome"], result["value"], result["baseline"]) == ("fail", 0.5, 1.0)
    assert "1 case(s) got worse" in result["note"]


def test_out_of_scope_regressions_do_not_fail_a_strict_rule(
    regression_gate, django_capture_on_commit_callbacks
):
    g = regression_gate
    decided(g["gate"], answers(g["cases"]), django_capture_on_commit_callbacks, "v1")

    second = decided(g["gate"], answers(g["cases"], wrong=("n1",)), django_capture_on_commit_callbacks, "v2")

    assert second.verdict == "pass"


def test_a_failed_check_is_never_a_baseline(regression_gate, django_capture_on_commit_callbacks):
    g = regression_gate
    good = decided(g["gate"], answers(g["cases"]), django_capture_on_commit_callbacks, "v1")
    failed = decided(g["gate"], answers(g["cases"], wrong=("h1",)), django_capture_on_commit_callbacks, "v2")
    assert (failed.verdict, failed.release_allowed) == ("fail", False)

    # Against the failed check h1 would not have regressed; against the good one it does.
    third = decided(g["gate"], answers(g["cases"], wrong=("h1",)), django_capture_on_commit_callbacks, "v3")

    assert third.baseline == good
    assert third.verdict == "fail"


def test_the_baseline_is_the_latest_allowed_check_and_an_override_makes_one(
    regression_gate, django_capture_on_commit_callbacks
):
    g = regression_gate
    decided(g["gate"], answers(g["cases"]), django_capture_on_commit_callbacks, "v1")
    overridden = decided(
        g["gate"], answers(g["cases"], wrong=("h1",)), django_capture_on_commit_callbacks, "v2"
    )
    override_check(overridden, actor=g["owner"], reason="h1's reference answer is wrong; fixing it")

    latest = decided(g["gate"], answers(g["cases"], wrong=("h1",)), django_capture_on_commit_callbacks, "v3")

    assert latest.baseline == overridden
    assert (latest.verdict, latest.release_allowed) == ("pass", True)


def test_an_owner_pinned_baseline_wins_over_the_latest_allowed_check(
    regression_gate, django_capture_on_commit_callbacks
):
    g = regression_gate
    pinned = decided(g["gate"], answers(g["cases"]), django_capture_on_commit_callbacks, "v1")
    overridden = decided(
        g["gate"], answers(g["cases"], wrong=("h1",)), django_capture_on_commit_callbacks, "v2"
    )
    override_check(overridden, actor=g["owner"], reason="known issue")
    Gate.objects.filter(pk=g["gate"].pk).update(baseline_check=pinned)

    latest = decided(g["gate"], answers(g["cases"], wrong=("h1",)), django_capture_on_commit_callbacks, "v3")

    assert latest.baseline == pinned
    assert latest.verdict == "fail"


# Trace deltas


def test_trace_deltas_report_tool_call_changes_per_failure_class(django_capture_on_commit_callbacks):
    s = make_scenario(n_trusted=3, n_monitoring=0)
    safety = make_case(s["dataset"], "s0", failure_class=make_failure_class("safety"))
    cases = [*s["cases"], safety]

    def traced(sequences: dict[str, list[str]]) -> list[dict[str, Any]]:
        return [
            {
                "case": c.key,
                "output": "No",
                "metrics": {"latency_ms": 800},
                "trace": [
                    {"type": "tool_call", "name": name, "arguments": {}}
                    for name in sequences.get(c.key, ["search"])
                ],
            }
            for c in cases
        ]

    baseline = decided(s["gate"], traced({}), django_capture_on_commit_callbacks, "v1")
    assert (baseline.verdict, baseline.trace_deltas) == ("pass", {})  # nothing to compare with yet
    check = decided(
        s["gate"],
        traced({"t0": ["search", "search", "search"], "t1": ["lookup"]}),
        django_capture_on_commit_callbacks,
        "v2",
    )

    assert check.baseline == baseline
    assert sorted(check.trace_deltas) == ["factual", "safety"]
    factual = check.trace_deltas["factual"]
    # factual: baseline 1 call in each of t0, t1, t2; candidate 3 + 1 + 1 = 5 over 3 cases.
    assert factual["tool_calls_mean"]["baseline"] == 1.0
    assert factual["tool_calls_mean"]["candidate"] == pytest.approx(5 / 3)
    assert factual["tool_calls_mean"]["delta"] == pytest.approx(2 / 3)
    assert factual["tool_sequence_changed"] == {
        "count": 2,
        "cases": [
            {"case": "t0", "baseline": ["search"], "candidate": ["search", "search", "search"]},
            {"case": "t1", "baseline": ["search"], "candidate": ["lookup"]},
        ],
    }
    safety_deltas = check.trace_deltas["safety"]
    assert safety_deltas["tool_calls_mean"]["delta"] == 0.0
    assert safety_deltas["tool_sequence_changed"] == {"count": 0, "cases": []}


# A gate's own target


def test_a_check_posted_without_outputs_runs_the_gates_default_target(
    api_client, fake_openai, django_capture_on_commit_callbacks
):
    target = save_target(
        slug="chat",
        kind="openai_chat",
        endpoint=make_endpoint(fake_openai.base_url),
        config={"model": "candidate-model"},
    )
    s = make_scenario(default_target=target)
    fake_openai.default(text("No"))
    secret = make_token([s["gate"]])

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            f"/api/v1/gates/{s['gate'].slug}/checks/",
            {"candidate": "model-v2"},
            format="json",
            **bearer(secret),
        )
    assert response.status_code == 202, response.content
    check = api_client.get(response.json()["url"], **bearer(secret)).json()

    assert (check["status"], check["verdict"], check["release_allowed"]) == ("done", "pass", True)
    assert check["progress"] == {"done": 6, "total": 6}
    assert len(fake_openai.requests) == 6
    assert {r["body"]["model"] for r in fake_openai.requests} == {"candidate-model"}


def test_a_check_without_outputs_on_a_gate_without_target_is_refused(api_client):
    s = make_scenario()
    secret = make_token([s["gate"]])

    response = api_client.post(
        f"/api/v1/gates/{s['gate'].slug}/checks/", {"candidate": "v1"}, format="json", **bearer(secret)
    )

    assert error_code(response, 400) == "invalid"
    assert "outputs" in response.json()["error"]["details"]
    assert not Check.objects.exists()


# Webhook


def test_the_decided_check_is_posted_to_the_gates_webhook(webhook_server, django_capture_on_commit_callbacks):
    s = make_scenario(webhook_url=f"http://127.0.0.1:{webhook_server.server_port}/hooks/evalgate")

    check = decided(s["gate"], outputs_for(s["cases"], latency_ms=5000), django_capture_on_commit_callbacks)

    [(path, content_type, body)] = webhook_server.received
    assert path == "/hooks/evalgate"
    assert content_type.startswith("application/json")
    assert body["id"] == check.pk
    assert (body["gate"], body["candidate"]) == (s["gate"].slug, "v1")
    assert (body["verdict"], body["release_allowed"]) == ("warn", False)
    assert [(r["name"], r["outcome"]) for r in body["rules"]] == [
        ("trusted accuracy", "pass"),
        ("latency budget", "fail"),
    ]


def test_no_webhook_is_posted_for_a_gate_without_one(webhook_server, django_capture_on_commit_callbacks):
    s = make_scenario()

    decided(s["gate"], outputs_for(s["cases"]), django_capture_on_commit_callbacks)

    assert webhook_server.received == []


# Who may change a gate


def test_the_owner_edits_a_gate_through_save_gate(django_capture_on_commit_callbacks):
    s = make_scenario()
    gate = s["gate"]

    save_gate(slug=gate.slug, name="Support release", warnings_need_approval=False, actor=s["owner"])

    gate.refresh_from_db()
    assert (gate.name, gate.warnings_need_approval) == ("Support release", False)
    assert gate.history.first().history_user == s["owner"]
    assert GateRule.objects.filter(gate=gate).count() == 2  # rules=None leaves the rule table alone


def test_editing_a_gate_without_naming_approvers_keeps_them(approver):
    s = make_scenario()
    s["gate"].approvers.add(approver)

    save_gate(slug=s["gate"].slug, name="Support release", actor=s["owner"])

    assert list(s["gate"].approvers.all()) == [approver]


def test_someone_else_cannot_change_a_gate_through_save_gate(gate_owner):
    s = make_scenario()
    before = (Gate.history.count(), GateRule.history.count())

    with pytest.raises(PermissionDenied):
        save_gate(slug=s["gate"].slug, name="Mine now", rules=[], actor=gate_owner)

    s["gate"].refresh_from_db()
    assert s["gate"].name == "Release gate"
    assert GateRule.objects.filter(gate=s["gate"]).count() == 2
    assert (Gate.history.count(), GateRule.history.count()) == before


# Admin


def staff_gate_owner(user) -> None:
    user.groups.add(Group.objects.get(name="Gate owner"))
    user.is_staff = True
    user.save()


def change_form_data(response) -> dict[str, Any]:
    """The POST body the change form would send back unchanged (main form and inlines)."""
    data: dict[str, Any] = {}

    def add(form) -> None:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = "on" if value is True else value

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
        for form in formset.forms:
            add(form)
    return data


def test_admin_gate_is_read_only_for_a_gate_owner_who_does_not_own_it(client, gate_owner):
    s = make_scenario()
    url = reverse("admin:gates_app_gate_change", args=[s["gate"].pk])
    client.force_login(gate_owner)

    page = client.get(url)
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert 'name="_save"' not in page.content.decode()
    response = client.post(url, {"name": "Mine now", "slug": s["gate"].slug})

    assert response.status_code == 403
    s["gate"].refresh_from_db()
    assert s["gate"].name == "Release gate"
    rule = GateRule.objects.filter(gate=s["gate"]).first()
    rule_url = reverse("admin:gates_app_gaterule_change", args=[rule.pk])
    assert client.get(rule_url).context["has_change_permission"] is False
    assert client.post(rule_url, {"name": "x", "metric": "pass_rate", "threshold": 0}).status_code == 403
    rule.refresh_from_db()
    assert rule.threshold == 0.9


RULE_FORM = {
    "name": "error budget",
    "position": "9",
    "metric": "error_rate",
    "scope": "{}",
    "mode": "absolute",
    "threshold": "0.05",
    "margin": "0",
    "decide_on": "point",
    "severity": "block",
    "stage": "release",
}


def test_admin_gate_owner_changes_their_gate_and_its_rules(client):
    s = make_scenario()
    staff_gate_owner(s["owner"])
    client.force_login(s["owner"])
    url = reverse("admin:gates_app_gate_change", args=[s["gate"].pk])

    page = client.get(url)
    assert page.context["has_change_permission"] is True
    response = client.post(url, {**change_form_data(page), "name": "Support release"})

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    s["gate"].refresh_from_db()
    assert s["gate"].name == "Support release"
    rule = GateRule.objects.get(gate=s["gate"], name="trusted accuracy")
    rule_url = reverse("admin:gates_app_gaterule_change", args=[rule.pk])
    response = client.post(rule_url, {**change_form_data(client.get(rule_url)), "threshold": "0.95"})
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.threshold == 0.95
    added = client.post(reverse("admin:gates_app_gaterule_add"), {**RULE_FORM, "gate": s["gate"].pk})
    assert added.status_code == 302
    assert GateRule.objects.filter(gate=s["gate"], name="error budget").exists()


def admin_action(client, action: str, check: Check, **extra: str):
    return client.post(
        reverse("admin:gates_app_check_changelist"),
        {"action": action, "_selected_action": [check.pk], **extra},
    )


def test_admin_approve_action_by_an_approver_takes_effect_after_confirmation(
    client, approver, django_capture_on_commit_callbacks
):
    s = make_scenario()
    s["gate"].approvers.add(approver)
    check = decided(s["gate"], outputs_for(s["cases"], latency_ms=5000), django_capture_on_commit_callbacks)
    client.force_login(approver)

    confirmation = admin_action(client, "approve", check)
    assert confirmation.status_code == 200
    assert confirmation.templates[0].name == "admin/evalgate_confirm_action.html"
    assert not CheckDecision.objects.exists()  # the first POST only asks
    done = admin_action(client, "approve", check, confirmed="yes", reason="cold cache after the deploy")

    assert done.status_code == 302
    check.refresh_from_db()
    assert check.release_allowed is True
    decision = check.decisions.get()
    assert (decision.kind, decision.actor, decision.reason) == (
        "approve",
        approver,
        "cold cache after the deploy",
    )


def test_admin_confirmation_without_a_reason_records_nothing(
    client, approver, django_capture_on_commit_callbacks
):
    s = make_scenario()
    s["gate"].approvers.add(approver)
    check = decided(s["gate"], outputs_for(s["cases"], latency_ms=5000), django_capture_on_commit_callbacks)
    client.force_login(approver)

    response = admin_action(client, "approve", check, confirmed="yes", reason="  ")

    assert response.status_code == 200  # the confirmation page again, asking for a reason
    assert not CheckDecision.objects.exists()


def test_admin_override_by_someone_other_than_the_owner_shows_an_error_and_records_nothing(
    client, approver, django_capture_on_commit_callbacks
):
    s = make_scenario()
    s["gate"].approvers.add(approver)
    make_gate(make_dataset(), owner=approver)  # an owner of another gate: the action is offered
    check = decided(s["gate"], outputs_for(s["cases"], "Yes"), django_capture_on_commit_callbacks)
    client.force_login(approver)

    assert admin_action(client, "override", check).status_code == 200
    response = admin_action(client, "override", check, confirmed="yes", reason="ship it anyway")

    assert response.status_code == 302
    errors = [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "error"]
    assert len(errors) == 1 and "Only the gate's owner" in errors[0]
    check.refresh_from_db()
    assert check.release_allowed is False
    assert not CheckDecision.objects.exists()


def test_admin_override_is_not_offered_to_someone_who_owns_no_gate(
    client, approver, django_capture_on_commit_callbacks
):
    s = make_scenario()
    s["gate"].approvers.add(approver)
    check = decided(s["gate"], outputs_for(s["cases"], "Yes"), django_capture_on_commit_callbacks)
    client.force_login(approver)

    changelist = client.get(reverse("admin:gates_app_check_changelist"))
    offered = [name for name, _ in changelist.context["action_form"].fields["action"].choices]
    assert "approve" in offered and "override" not in offered
    admin_action(client, "override", check, confirmed="yes", reason="ship it anyway")  # a raw POST
    check.refresh_from_db()
    assert check.release_allowed is False and not CheckDecision.objects.exists()


def test_admin_a_gate_owner_cannot_add_a_rule_to_someone_elses_gate(client, gate_owner):
    s = make_scenario()
    client.force_login(gate_owner)
    before = GateRule.objects.count()

    response = client.post(reverse("admin:gates_app_gaterule_add"), {**RULE_FORM, "gate": s["gate"].pk})

    assert response.status_code in (200, 403)  # the form refuses the gate, or the page does
    assert GateRule.objects.count() == before
