"""Issue 10, finding 3: "incidents stay fixed" never silently stops holding.

`pinned_pass` covers every pinned case in scope whatever its status; one that cannot be graded
makes the rule undecided and the note names it; retiring or unpinning takes two people; a
pinned case is audited only when a grader reads it.
"""

import copy
from io import StringIO

import pytest
import yaml
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from audit_app.models import AuditEvent
from datasets_app import services
from datasets_app.models import Case, PinnedCaseRequest
from gates_app.services import request_check
from grading_app.models import Grader
from tests.factories import (
    make_case,
    make_dataset,
    make_failure_class,
    make_gate,
    make_grader,
    make_user,
    outputs_for,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(dataset_owner):
    """A dataset with three trusted cases, one of them pinned, and a gate whose only rule is
    that pinned incidents pass."""
    factual = make_failure_class("factual")
    grader = make_grader()  # exact_match on expected.answer: it reads every case below
    dataset = make_dataset("support", owner=dataset_owner)
    cases = [make_case(dataset, f"c{i}", failure_class=factual) for i in range(2)]
    pinned = make_case(dataset, "incident-42", failure_class=factual, pinned=True)
    gate_owner = make_user("gate-boss", roles=("Gate owner",), is_staff=True)
    gate = make_gate(
        dataset,
        "release",
        owner=gate_owner,
        rules=[{"name": "pinned incidents pass", "metric": "pinned_pass", "severity": "block"}],
    )
    return {
        "dataset": dataset,
        "cases": [*cases, pinned],
        "pinned": pinned,
        "gate": gate,
        "grader": grader,
        "factual": factual,
        "gate_owner": gate_owner,
    }


def verdict(gate, outputs, capture):
    with capture(execute=True):
        check, _ = request_check(gate=gate, candidate="rc", outputs=outputs)
    check.refresh_from_db()
    return check


def test_a_regressed_candidate_fails_the_pinned_rule_and_the_note_names_the_case(
    world, django_capture_on_commit_callbacks
):
    outputs = outputs_for(world["cases"])
    outputs[-1]["output"] = "Yes"  # the incident is back

    check = verdict(world["gate"], outputs, django_capture_on_commit_callbacks)

    (rule,) = check.rule_results
    assert (check.verdict, rule["outcome"], rule["note"]) == ("fail", "fail", "failing: incident-42")


def test_editing_a_pinned_case_sends_it_to_review_and_the_pinned_rule_is_undecided_naming_it(
    world, dataset_owner, django_capture_on_commit_callbacks
):
    # The bypass as found: edit the tags, the case leaves the run, the regression passes.
    case = services.edit_case(world["pinned"], actor=dataset_owner, tags=["refunds"])
    assert case.status == "in_review"
    outputs = outputs_for(world["cases"])
    outputs[-1]["output"] = "Yes"

    check = verdict(world["gate"], outputs, django_capture_on_commit_callbacks)

    (rule,) = check.rule_results
    assert (check.verdict, rule["outcome"]) == ("inconclusive", "undecided")
    assert rule["note"] == "cannot be graded: incident-42 (in review, not active)"
    assert rule["cases_undecided"] == ["incident-42"]


def test_a_pinned_case_with_no_grader_that_applies_makes_the_rule_undecided(
    world, django_capture_on_commit_callbacks
):
    Grader.objects.filter(pk=world["grader"].pk).update(active=False)  # nothing reads expected.answer now

    check = verdict(world["gate"], outputs_for(world["cases"]), django_capture_on_commit_callbacks)

    (rule,) = check.rule_results
    assert (check.verdict, rule["note"]) == (
        "inconclusive",
        "cannot be graded: incident-42 (no grader applies)",
    )


def test_a_missing_pinned_output_is_undecided_whatever_the_gates_tolerance(
    world, django_capture_on_commit_callbacks
):
    world["gate"].missing_tolerance = 0.5
    world["gate"].save()

    check = verdict(world["gate"], outputs_for(world["cases"][:2]), django_capture_on_commit_callbacks)

    (rule,) = check.rule_results
    assert rule["outcome"] == "undecided"
    assert rule["note"].startswith("cannot be graded: incident-42 (")


def test_a_pinned_case_nobody_can_grade_is_refused_at_audit(world, dataset_owner, reviewer):
    case = services.add_case(
        dataset=world["dataset"],
        key="incident-43",
        failure_class=world["factual"],
        input={"messages": [{"role": "user", "content": "hi"}]},
        expected={},
        tier="trusted",
        pinned=True,
        actor=dataset_owner,
    )

    with pytest.raises(ValidationError, match="no active grader applies to case incident-43"):
        services.audit_case(case, actor=reviewer)

    case = services.edit_case(case, actor=dataset_owner, expected={"answer": "No"})
    assert services.audit_case(case, actor=reviewer).status == "active"


def test_one_dataset_owner_alone_cannot_retire_a_pinned_case(world, dataset_owner):
    with pytest.raises(ValidationError, match="is pinned"):
        services.retire_case(world["pinned"], actor=dataset_owner, reason="obsolete")
    with pytest.raises(ValidationError, match="is pinned"):
        services.demote_case(world["pinned"], actor=dataset_owner, reason="noisy")
    with pytest.raises(ValidationError, match="two people"):
        services.edit_case(world["pinned"], actor=dataset_owner, pinned=False)

    request = services.request_pinned_change(
        world["pinned"], actor=dataset_owner, change="retire", reason="the feature is gone"
    )
    with pytest.raises(PermissionDenied, match="second person"):
        services.confirm_pinned_change(request, actor=dataset_owner)

    case = Case.objects.get(pk=world["pinned"].pk)
    assert (case.status, case.pinned) == ("active", True)


def test_a_second_dataset_owner_confirms_a_retirement(world, dataset_owner):
    other = make_user("second-owner", roles=("Dataset owner",))
    request = services.request_pinned_change(
        world["pinned"], actor=dataset_owner, change="retire", reason="the feature is gone"
    )

    case = services.confirm_pinned_change(request, actor=other, note="checked with support")

    assert (case.status, case.pinned) == ("retired", False)
    request.refresh_from_db()
    assert (request.status, request.decided_by) == ("confirmed", other)
    actions = list(AuditEvent.objects.filter(object_id=str(case.pk)).values_list("action", "actor_username"))
    assert ("pinned.change_requested", "dataset_owner") in actions
    assert ("pinned.change_confirmed", "second-owner") in actions


def test_an_owner_of_a_gate_on_the_dataset_may_confirm_but_not_one_of_another_dataset(world, dataset_owner):
    stranger = make_user("stranger", roles=("Gate owner",))
    make_gate(make_dataset("elsewhere"), "other-gate", owner=stranger)
    request = services.request_pinned_change(
        world["pinned"], actor=dataset_owner, change="unpin", reason="dup"
    )

    with pytest.raises(PermissionDenied):
        services.confirm_pinned_change(request, actor=stranger)
    case = services.confirm_pinned_change(request, actor=world["gate_owner"])

    assert (case.status, case.pinned) == ("active", False)


def test_declined_and_withdrawn_requests_leave_the_case_pinned(world, dataset_owner):
    other = make_user("second-owner", roles=("Dataset owner",))
    first = services.request_pinned_change(
        world["pinned"], actor=dataset_owner, change="retire", reason="old"
    )
    with pytest.raises(ValidationError):
        services.decline_pinned_change(first, actor=other, note=" ")
    services.decline_pinned_change(first, actor=other, note="it happened again last week")
    second = services.request_pinned_change(
        world["pinned"], actor=dataset_owner, change="unpin", reason="old"
    )
    with pytest.raises(PermissionDenied):
        services.withdraw_pinned_change(second, actor=other)
    services.withdraw_pinned_change(second, actor=dataset_owner)

    case = Case.objects.get(pk=world["pinned"].pk)
    assert (case.status, case.pinned) == ("active", True)
    assert list(PinnedCaseRequest.objects.order_by("pk").values_list("status", flat=True)) == [
        "declined",
        "withdrawn",
    ]


def test_the_admin_retire_action_refuses_a_pinned_case_and_the_request_path_works(
    client, world, dataset_owner
):
    client.force_login(dataset_owner)
    changelist = reverse("admin:datasets_app_case_changelist")

    refused = client.post(
        changelist,
        {"action": "retire", "_selected_action": [world["pinned"].pk], "confirmed": "yes", "reason": "old"},
        follow=True,
    )
    assert any("is pinned" in str(m) for m in refused.context["messages"])
    client.post(
        changelist,
        {
            "action": "ask_to_retire_pinned",
            "_selected_action": [world["pinned"].pk],
            "confirmed": "yes",
            "reason": "the feature is gone",
        },
    )
    request = PinnedCaseRequest.objects.get()
    assert (request.change, request.requested_by) == ("retire", dataset_owner)

    # The requester's own confirmation, as a raw POST to the requests list: refused, nothing changes.
    requests_url = reverse("admin:datasets_app_pinnedcaserequest_changelist")
    client.post(requests_url, {"action": "confirm", "_selected_action": [request.pk], "confirmed": "yes"})
    assert Case.objects.get(pk=world["pinned"].pk).status == "active"

    client.force_login(world["gate_owner"])
    client.post(requests_url, {"action": "confirm", "_selected_action": [request.pk], "confirmed": "yes"})
    assert Case.objects.get(pk=world["pinned"].pk).status == "retired"


def test_the_case_form_cannot_unpin(client, world, dataset_owner):
    client.force_login(dataset_owner)
    case = world["pinned"]
    url = reverse("admin:datasets_app_case_change", args=[case.pk])
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data.pop("pinned")  # an unticked checkbox
    data.update(input='{"messages": [{"role": "user", "content": "Can I get a refund after 40 days?"}]}')
    data.update(expected='{"answer": "No"}', tags="[]")

    response = client.post(url, data)

    assert response.status_code == 200
    assert "pinned" in response.context["adminform"].form.errors
    assert Case.objects.get(pk=case.pk).pinned is True


def pinned_config(graders: bool) -> dict:
    """A config declaring one pinned trusted case by carol (with an exact-match grader or not)."""
    config = {
        "failure_classes": [{"slug": "factual", "name": "Factual"}],
        "datasets": [
            {
                "slug": "support",
                "name": "Support",
                "cases": [
                    {
                        "key": "incident-1",
                        "tier": "trusted",
                        "contributed_by": "carol",
                        "pinned": True,
                        "failure_class": "factual",
                        "input": {"messages": [{"role": "user", "content": "refund?"}]},
                        "expected": {"answer": "No"},
                    }
                ],
            }
        ],
    }
    if graders:
        config["graders"] = [{"slug": "answer-exact", "kind": "exact_match", "dimension": "correctness"}]
    return config


def test_a_config_cannot_unpin_a_pinned_case(tmp_path, dataset_owner):
    Group.objects.get(name="Reviewer").user_set.add(dataset_owner)
    make_user("carol", roles=("Domain expert",))
    config = pinned_config(graders=True)
    path = tmp_path / "evals.yaml"
    path.write_text(yaml.safe_dump(config))
    call_command("apply_config", str(path), "--as", dataset_owner.username, stdout=StringIO())
    assert Case.objects.get(key="incident-1").pinned is True

    unpinned = copy.deepcopy(config)
    unpinned["datasets"][0]["cases"][0]["pinned"] = False
    path.write_text(yaml.safe_dump(unpinned))
    with pytest.raises(CommandError, match="cannot unpin"):
        call_command("apply_config", str(path), "--as", dataset_owner.username, stdout=StringIO())
    assert Case.objects.get(key="incident-1").pinned is True


def test_a_config_cannot_make_an_ungradable_pinned_case_active(tmp_path, dataset_owner):
    make_user("carol", roles=("Domain expert",))
    config = pinned_config(graders=False)
    path = tmp_path / "evals.yaml"
    path.write_text(yaml.safe_dump(config))

    with pytest.raises(CommandError, match=r"datasets\[0\]\.cases\[0\]\.expected: no active grader applies"):
        call_command("apply_config", str(path), "--as", dataset_owner.username, stdout=StringIO())
    assert not Case.objects.exists()
