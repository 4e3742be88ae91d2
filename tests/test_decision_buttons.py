"""Issue 11: decisions are buttons on the object pages, shown only to people the service would
allow, each a two-step confirmation that records the reason; a refused POST is a message."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from datasets_app import services as datasets
from datasets_app.models import Case
from gates_app.models import CheckDecision
from gates_app.services import request_check
from grading_app import services as grading
from tests.factories import (
    make_case,
    make_dataset,
    make_endpoint,
    make_failure_class,
    make_grader,
    make_rubric_version,
    make_scenario,
    make_user,
    outputs_for,
)

pytestmark = pytest.mark.django_db


def buttons(client, url) -> set[str]:
    response = client.get(url)
    assert response.status_code == 200
    return {decision.name for decision, _ in response.context["decisions"]}


def decide(client, model: str, pk: int, name: str, reason: str = ""):
    url = reverse(f"admin:{model}_decide", args=[pk, name])
    return client.post(url, {"confirmed": "yes", "reason": reason}, follow=True)


@pytest.fixture
def checks(approver, django_capture_on_commit_callbacks):
    s = make_scenario()
    s["gate"].approvers.add(approver)
    s["owner"].is_staff = True
    s["owner"].save()
    s["owner"].groups.add(Group.objects.get(name="Gate owner"))
    with django_capture_on_commit_callbacks(execute=True):
        s["warn"], _ = request_check(
            gate=s["gate"], candidate="w", outputs=outputs_for(s["cases"], latency_ms=5000)
        )
        s["mine"], _ = request_check(
            gate=s["gate"], candidate="m", outputs=outputs_for(s["cases"], latency_ms=6000), actor=approver
        )
        s["fail"], _ = request_check(gate=s["gate"], candidate="f", outputs=outputs_for(s["cases"], "Yes"))
    return s


def check_url(check) -> str:
    return reverse("admin:gates_app_check_change", args=[check.pk])


def test_check_pages_offer_each_person_only_the_decisions_they_may_take(client, checks, approver):
    client.force_login(approver)
    assert buttons(client, check_url(checks["warn"])) == {"approve"}
    assert buttons(client, check_url(checks["mine"])) == set()  # the approver requested it
    assert buttons(client, check_url(checks["fail"])) == set()

    client.force_login(checks["owner"])
    assert buttons(client, check_url(checks["fail"])) == {"override"}
    assert buttons(client, check_url(checks["warn"])) == {"approve"}


def test_approving_from_the_check_page_takes_two_steps_and_a_reason(client, checks, approver):
    client.force_login(approver)
    url = reverse("admin:gates_app_check_decide", args=[checks["warn"].pk, "approve"])
    assert client.get(url).status_code == 200  # the confirmation page
    assert not CheckDecision.objects.exists()

    without = client.post(url, {"confirmed": "yes", "reason": " "})
    assert without.status_code == 200 and not CheckDecision.objects.exists()
    done = decide(client, "gates_app_check", checks["warn"].pk, "approve", "cold cache after the deploy")

    assert done.redirect_chain[-1][0] == check_url(checks["warn"])
    decision = CheckDecision.objects.get()
    assert (decision.actor, decision.reason) == (approver, "cold cache after the deploy")
    assert "cold cache after the deploy" in done.content.decode()  # the trail, on the check page
    assert buttons(client, check_url(checks["warn"])) == set()  # approved once: nothing more to do


def test_a_refused_decision_posted_anyway_is_a_message_not_an_error(client, checks, approver):
    client.force_login(approver)

    response = decide(client, "gates_app_check", checks["mine"].pk, "approve", "I asked for it, but still")

    assert response.status_code == 200
    assert any("You requested this check" in str(m) for m in response.context["messages"])
    assert not CheckDecision.objects.exists()
    override = decide(client, "gates_app_check", checks["fail"].pk, "override", "ship it")
    assert any("Only the gate's owners" in str(m) for m in override.context["messages"])


def test_the_check_page_is_legible_to_an_approver(client, checks, approver):
    client.force_login(approver)

    page = client.get(check_url(checks["fail"])).content.decode()

    assert 'id="rule-table"' in page
    for heading in ("grader", "scope", "threshold / margin", "95% interval"):
        assert f"<th>{heading}</th>" in page
    assert "Cases behind this rule: 4 failed, 0 undecided" in page  # the 4 trusted cases said "Yes"
    assert "expected &#x27;no&#x27;, got &#x27;yes&#x27;" in page  # the grader's rationale
    assert 'id="approval-trail"' not in page and "No approvals or overrides." in page


def case_url(case) -> str:
    return reverse("admin:datasets_app_case_change", args=[case.pk])


def test_case_pages_offer_submit_audit_return_retire_and_restore_to_the_right_people(
    client, expert, reviewer, dataset_owner
):
    dataset = make_dataset()
    make_grader()  # reads expected.answer: pinned cases can be audited
    case = make_case(dataset, "draft-1", contributor=expert, active=False)
    client.force_login(expert)
    assert buttons(client, case_url(case)) == {"submit"}
    decide(client, "datasets_app_case", case.pk, "submit")

    client.force_login(reviewer)
    assert buttons(client, case_url(case)) == {"audit", "return"}
    response = decide(client, "datasets_app_case", case.pk, "return", "Say which policy applies.")
    case = Case.objects.get(pk=case.pk)
    assert (case.status, case.review_note) == ("draft", "reviewer: Say which policy applies.")
    assert "Say which policy applies." in response.content.decode()

    datasets.submit_case(case, actor=expert)
    decide(client, "datasets_app_case", case.pk, "audit", "Checked against the policy page.")
    assert Case.objects.get(pk=case.pk).status == "active"

    client.force_login(dataset_owner)
    assert "retire" in buttons(client, case_url(case))
    decide(client, "datasets_app_case", case.pk, "retire", "Duplicate of refund-02.")
    assert buttons(client, case_url(case)) == {"restore"}
    decide(client, "datasets_app_case", case.pk, "restore", "Not a duplicate after all.")
    assert Case.objects.get(pk=case.pk).status == "in_review"


def test_a_contributor_who_reviews_sees_no_audit_button_on_their_trusted_case(client):
    both = make_user("both", roles=("Domain expert", "Reviewer"), is_staff=True)
    case = datasets.add_case(
        dataset=make_dataset(),
        key="own",
        failure_class=make_failure_class(),
        input={"messages": [{"role": "user", "content": "hi"}]},
        expected={"answer": "No"},
        tier="trusted",
        actor=both,
    )
    datasets.submit_case(case, actor=both)
    client.force_login(both)

    assert "audit" not in buttons(client, case_url(case))
    refused = decide(client, "datasets_app_case", case.pk, "audit", "looks fine to me")
    assert any("other than its contributor" in str(m) for m in refused.context["messages"])
    assert Case.objects.get(pk=case.pk).status == "in_review"


def test_a_pinned_case_offers_requests_instead_of_retirement(client, dataset_owner):
    make_grader()
    case = make_case(make_dataset(), "incident-1", pinned=True)
    client.force_login(dataset_owner)

    assert {"ask-retire", "ask-unpin"} <= buttons(client, case_url(case))
    assert "retire" not in buttons(client, case_url(case))


def test_rubric_version_pages_offer_sign_off_to_owners_other_than_the_author(client):
    owner = make_user("tone-owner", roles=("Rubric owner",), is_staff=True)
    version = make_rubric_version(make_endpoint("http://127.0.0.1:9/v1"), approved=False, owner=owner)
    author = version.author
    author.is_staff = True
    author.save()
    url = reverse("admin:grading_app_rubricversion_change", args=[version.pk])
    client.force_login(author)
    assert buttons(client, url) == {"submit"}
    decide(client, "grading_app_rubricversion", version.pk, "submit")
    assert buttons(client, url) == set()

    client.force_login(owner)
    assert buttons(client, url) == {"approve", "reject"}
    decide(client, "grading_app_rubricversion", version.pk, "approve", "Matches the tone guide.")
    version.refresh_from_db()
    assert version.state == "approved"
    assert grading.sign_off_blocker(version) == ""


def refusal_on_the_page(client, model: str, pk: int, name: str) -> str:
    """The confirmation page as someone the service would refuse opens it by its URL."""
    page = client.get(reverse(f"admin:{model}_decide", args=[pk, name])).content.decode()
    assert "confirming will show why" not in page
    return page


def test_a_refused_decide_page_says_why_before_anyone_confirms(client, checks, approver, dataset_owner):
    # Admin walk L1: every refused decide/ page said "confirming will show why".
    client.force_login(approver)
    page = refusal_on_the_page(client, "gates_app_check", checks["mine"].pk, "approve")
    assert "You cannot take this decision on" in page and "You requested this check" in page
    page = refusal_on_the_page(client, "gates_app_check", checks["fail"].pk, "override")
    assert "Only the gate&#x27;s owners can override a verdict." in page

    case = datasets.add_case(
        dataset=make_dataset(),
        key="own",
        failure_class=make_failure_class(),
        input={"messages": [{"role": "user", "content": "hi"}]},
        expected={"answer": "No"},
        tier="trusted",
        actor=dataset_owner,
    )
    client.force_login(dataset_owner)
    page = refusal_on_the_page(client, "datasets_app_case", case.pk, "audit")
    assert "audited by someone other than its contributor" in page
    page = refusal_on_the_page(client, "datasets_app_case", case.pk, "promote")
    assert "It is trusted already." in page
