"""Issue 11: the "Waiting for me" page counts exactly what each person may do now, links it,
and costs the same queries for one item as for many."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from datasets_app import services as datasets
from gates_app.services import request_check
from gates_app.waiting import waiting_for
from grading_app import services as grading
from tests.factories import (
    make_dataset,
    make_endpoint,
    make_failure_class,
    make_rubric_version,
    make_scenario,
    make_user,
    outputs_for,
)

pytestmark = pytest.mark.django_db
URL = "/admin/waiting/"


def counts(user) -> dict[str, int]:
    return {section.key: section.count for section in waiting_for(user)}


def in_review(dataset, key, contributor):
    """A trusted case ``contributor`` wrote and submitted for review."""
    case = datasets.add_case(
        dataset=dataset,
        key=key,
        failure_class=make_failure_class(),
        input={"messages": [{"role": "user", "content": "Can I get a refund after 40 days?"}]},
        expected={"answer": "No"},
        tier="trusted",
        actor=contributor,
    )
    return datasets.submit_case(case, actor=contributor)


def test_a_reviewer_waits_for_the_cases_they_may_audit_and_no_others(expert):
    reviewer = make_user("writes-and-reviews", roles=("Domain expert", "Reviewer"))
    dataset = make_dataset()
    in_review(dataset, "theirs", expert)
    in_review(dataset, "mine", reviewer)  # contributed by the reviewer
    edited = in_review(dataset, "edited", expert)
    datasets.edit_case(edited, actor=reviewer, expected={"answer": "No."})  # changed by the reviewer

    section = next(s for s in waiting_for(reviewer) if s.key == "audit")

    assert [item.label for item in section.items] == ["theirs"]
    assert section.count == 1


def test_a_case_returned_with_a_note_waits_for_its_author(reviewer, expert):
    case = in_review(make_dataset(), "needs-work", expert)
    datasets.return_case(case, actor=reviewer, note="Cite the 30-day policy in the answer.")

    section = next(s for s in waiting_for(expert) if s.key == "returned")

    assert [(i.label, i.detail) for i in section.items] == [
        ("needs-work", "reviewer: Cite the 30-day policy in the answer.")
    ]


def test_checks_wait_for_approvers_but_never_their_requester_and_failures_for_owners(
    approver, django_capture_on_commit_callbacks
):
    s = make_scenario()
    s["gate"].approvers.add(approver)
    s["owner"].groups.add(Group.objects.get(name="Gate owner"))
    with django_capture_on_commit_callbacks(execute=True):
        request_check(gate=s["gate"], candidate="slow", outputs=outputs_for(s["cases"], latency_ms=5000))
        request_check(
            gate=s["gate"], candidate="mine", outputs=outputs_for(s["cases"], latency_ms=6000), actor=approver
        )
        request_check(gate=s["gate"], candidate="bad", outputs=outputs_for(s["cases"], "Yes"))

    assert counts(approver)["approve"] == 1  # "mine" was requested by the approver
    owner = type(s["owner"]).objects.get(pk=s["owner"].pk)  # fresh permission cache
    assert (counts(owner)["blocked"], counts(owner)["approve"]) == (1, 2)


def test_rubric_versions_wait_for_owners_other_than_their_author():
    owner = make_user("tone-owner", roles=("Rubric owner",))
    version = make_rubric_version(make_endpoint("http://127.0.0.1:9/v1"), approved=False, owner=owner)
    grading.submit_rubric_version(version, actor=version.author)

    assert counts(owner)["sign_off"] == 1
    assert counts(version.author)["sign_off"] == 0


def test_the_page_and_the_index_show_the_counts_with_links(client, reviewer, expert):
    case = in_review(make_dataset(), "theirs", expert)
    client.force_login(reviewer)

    page = client.get(URL).content.decode()
    index = client.get(reverse("admin:index")).content.decode()

    assert reverse("admin:datasets_app_case_change", args=[case.pk]) in page
    assert 'id="waiting-audit"' in page and 'data-count="1"' in page
    assert "Waiting for me: 1" in index


def test_the_waiting_page_costs_the_same_queries_for_one_item_as_for_many(
    client, expert, django_capture_on_commit_callbacks
):
    user = make_user("everyone", roles=("Reviewer", "Dataset owner", "Release approver"), is_staff=True)
    dataset = make_dataset()
    s = make_scenario(n_trusted=2, n_monitoring=0)
    s["gate"].approvers.add(user)

    def add_work(start: int, n: int) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            for i in range(start, start + n):
                in_review(dataset, f"case-{i}", expert)
                request_check(
                    gate=s["gate"], candidate=f"c{i}", outputs=outputs_for(s["cases"], latency_ms=5000)
                )
                datasets.report_incident(title=f"incident {i}", actor=expert)

    def measure() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL).status_code == 200
        return len(queries)

    client.force_login(user)
    add_work(0, 1)
    client.get(URL)  # warm the session and the permission cache
    one = measure()
    add_work(1, 14)
    many = measure()

    assert (counts(user)["audit"], counts(user)["approve"], counts(user)["incidents"]) == (15, 15, 15)
    # Session and user, then one query per section (audit, returned, sign-off, approve, blocked,
    # pinned requests, incidents, results to label; subqueries inside them): never per item.
    assert one == many


def test_the_waiting_for_me_link_is_drawn_in_the_caption_link_colour(client, reviewer):
    # Admin walk L2: a plain link in the caption is the caption's own blue, so nobody saw it;
    # Django's "section" links are drawn in the header link colour.
    client.force_login(reviewer)

    index = client.get("/admin/").content.decode()

    assert '<caption><a class="section" href="/admin/waiting/">Waiting for me: ' in index
