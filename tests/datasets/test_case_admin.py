"""The case admin through the test client: forms, lifecycle actions, history diffs, dataset counts."""

import json

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from datasets_app import services
from datasets_app.choices import CaseStatus, Tier
from datasets_app.models import Case
from tests.factories import make_case, make_dataset, make_failure_class, make_user

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:datasets_app_case_changelist")
ADD = reverse("admin:datasets_app_case_add")
QUESTION = {"messages": [{"role": "user", "content": "Can I get a refund after 40 days?"}]}


def change_url(case: Case) -> str:
    return reverse("admin:datasets_app_case_change", args=[case.pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def add_form(dataset, failure_class, **fields: str) -> dict[str, object]:
    """The add form as a domain expert fills it: plain fields, JSON boxes left empty."""
    return {
        "dataset": dataset.pk,
        "key": "refund-40",
        "failure_class": failure_class.pk,
        "tier": "trusted",
        "risk": "normal",
        "tags": "",
        "user_message": "Can I get a refund after 40 days?",
        "input": "",
        "answer": "",
        "contains": "",
        "must_refuse": "",
        "must_abstain": "",
        "citations": "",
        "tools": "",
        "expected": "",
        **fields,
    }


def unchanged_form(client, case: Case, url: str = "") -> dict[str, object]:
    """What a browser posts back from the case's change page (or ``url``) when nothing is touched."""
    form = client.get(url or change_url(case)).context["adminform"].form
    data: dict[str, object] = {}
    for name in form.fields:
        value = form[name].value()
        if value is True:
            data[name] = "on"
        elif value not in (None, False):
            data[name] = value
    return data


def run_action(client, action: str, cases: list[Case], **confirmation: str):
    """Post an admin action as the changelist does; with ``confirmation``, post the confirm page too."""
    selected = [c.pk for c in cases]
    first = client.post(CHANGELIST, {"action": action, "_selected_action": selected, "index": 0})
    if not confirmation:
        return first
    return client.post(
        CHANGELIST, {"action": action, "_selected_action": selected, "confirmed": "yes", **confirmation}
    )


def trusted_case(**fields) -> Case:
    return make_case(make_dataset(), tier=Tier.TRUSTED, **fields)


# the add and change forms


def test_plain_fields_merge_into_input_and_expected_json(client, expert):
    client.force_login(expert)
    dataset, failure_class = make_dataset(), make_failure_class()

    response = client.post(
        ADD,
        add_form(
            dataset,
            failure_class,
            answer="No, refunds end after 30 days.",
            contains="30 days\nreceipt",
            must_refuse="false",
            citations="doc-7, doc-9",
            tools="lookup_order",
            tags='["refunds"]',
        ),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    case = Case.objects.get()
    assert case.input == QUESTION
    assert case.expected == {
        "answer": "No, refunds end after 30 days.",
        "contains": ["30 days", "receipt"],
        "must_refuse": False,
        "citations": ["doc-7", "doc-9"],
        "tools": ["lookup_order"],
    }
    assert case.tags == ["refunds"]
    assert (case.status, case.revision, case.contributed_by) == (CaseStatus.DRAFT, 1, expert)
    assert case.history.get().history_change_reason == "added"


@pytest.mark.parametrize(
    "choice, expected", [("true", {"must_refuse": True}), ("false", {"must_refuse": False})]
)
def test_must_refuse_yes_and_no_are_both_checks(client, expert, choice, expected):
    client.force_login(expert)

    client.post(ADD, add_form(make_dataset(), make_failure_class(), must_refuse=choice))

    assert Case.objects.get().expected == expected


def test_contains_box_takes_one_fact_per_line_even_with_commas(client, expert):
    client.force_login(expert)

    client.post(
        ADD, add_form(make_dataset(), make_failure_class(), contains="No, only within 30 days\nreceipt")
    )

    assert Case.objects.get().expected == {"contains": ["No, only within 30 days", "receipt"]}


def test_must_refuse_not_graded_leaves_the_key_out(client, expert):
    client.force_login(expert)

    client.post(ADD, add_form(make_dataset(), make_failure_class(), must_refuse="", answer="No"))

    assert Case.objects.get().expected == {"answer": "No"}


def test_plain_field_wins_over_the_same_key_in_the_expected_json(client, expert):
    client.force_login(expert)

    client.post(
        ADD,
        add_form(
            make_dataset(), make_failure_class(), answer="No", expected='{"answer": "Yes", "pattern": "^No"}'
        ),
    )

    assert Case.objects.get().expected == {"answer": "No", "pattern": "^No"}


def test_user_message_adds_messages_next_to_input_variables(client, expert):
    client.force_login(expert)

    client.post(ADD, add_form(make_dataset(), make_failure_class(), input='{"vars": {"country": "FR"}}'))

    assert Case.objects.get().input == {"vars": {"country": "FR"}, **QUESTION}


def test_invalid_expected_json_is_refused_with_line_and_column(client, expert):
    client.force_login(expert)

    response = client.post(
        ADD, add_form(make_dataset(), make_failure_class(), expected='{\n  "answer" "No"\n}')
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["expected"] == ["Expected is not valid JSON: Expecting ':' delimiter (line 2, column 12)."]
    assert not Case.objects.exists()


def test_invalid_input_json_is_refused_with_line_and_column(client, expert):
    client.force_login(expert)

    response = client.post(
        ADD, add_form(make_dataset(), make_failure_class(), user_message="", input='{"vars": tru}')
    )

    errors = response.context["adminform"].form.errors
    assert errors["input"] == ["Input is not valid JSON: Expecting value (line 1, column 10)."]
    assert not Case.objects.exists()


def test_wrong_type_for_a_conventional_expected_key_names_the_key(client, expert):
    client.force_login(expert)

    response = client.post(
        ADD, add_form(make_dataset(), make_failure_class(), expected='{"must_refuse": "yes"}')
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["expected"] == [
        "expected.must_refuse must be true or false."
    ]
    assert "expected.must_refuse must be true or false." in response.content.decode()
    assert not Case.objects.exists()


def test_case_without_any_input_is_refused(client, expert):
    client.force_login(expert)

    response = client.post(ADD, add_form(make_dataset(), make_failure_class(), user_message=""))

    assert response.context["adminform"].form.errors["input"] == [
        'Input must be a non-empty JSON object, e.g. {"messages": [...]}.'
    ]
    assert not Case.objects.exists()


def test_editing_content_of_active_trusted_case_in_admin_sends_it_back_to_review(client, expert):
    case = trusted_case(contributor=expert)
    client.force_login(expert)

    response = client.post(
        change_url(case), {**unchanged_form(client, case), "answer": "No, 30 days at most."}
    )

    assert response.status_code == 302
    assert "This trusted case changed, so it is back in review until audited." in messages_of(response)
    case.refresh_from_db()
    assert (case.status, case.revision) == (CaseStatus.IN_REVIEW, 2)
    assert case.expected == {"answer": "No, 30 days at most."}


def test_emptying_a_plain_field_removes_its_key(client, expert):
    case = trusted_case(contributor=expert, expected={"answer": "No", "citations": ["doc-7"]})
    client.force_login(expert)

    client.post(change_url(case), {**unchanged_form(client, case), "citations": ""})

    case.refresh_from_db()
    assert case.expected == {"answer": "No"}


def test_saving_an_untouched_change_form_keeps_a_trusted_case_active(client, expert):
    case = trusted_case(
        contributor=expert,
        expected={
            "answer": "No",
            "contains": ["30 days", "receipt"],
            "must_refuse": False,
            "citations": ["doc-7"],
        },
        tags=["refunds"],
    )
    client.force_login(expert)

    response = client.post(change_url(case), unchanged_form(client, case))

    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.status, case.revision) == (CaseStatus.ACTIVE, 1)


def test_saving_an_untouched_form_does_not_split_a_fact_that_contains_a_comma(client, expert):
    # The contains box is "one per line"; an imported fact may well hold a comma.
    case = trusted_case(contributor=expert, expected={"contains": ["No, only within 30 days"]})
    client.force_login(expert)

    client.post(change_url(case), unchanged_form(client, case))

    case.refresh_from_db()
    assert case.expected == {"contains": ["No, only within 30 days"]}
    assert (case.status, case.revision) == (CaseStatus.ACTIVE, 1)


def test_editing_a_key_in_the_expected_json_is_kept_when_its_plain_field_is_untouched(client, expert):
    case = trusted_case(contributor=expert, expected={"answer": "No"})
    client.force_login(expert)

    client.post(
        change_url(case), {**unchanged_form(client, case), "expected": '{"answer": "No, 30 days at most."}'}
    )

    case.refresh_from_db()
    assert case.expected == {"answer": "No, 30 days at most."}


def test_renaming_a_case_to_a_key_taken_in_its_dataset_is_a_form_error(client, expert):
    dataset = make_dataset()
    make_case(dataset, "taken")
    case = make_case(dataset, "mine", contributor=expert)
    client.force_login(expert)

    response = client.post(change_url(case), {**unchanged_form(client, case), "key": "taken"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["key"] == [
        "A case with this key already exists in this dataset."
    ]
    case.refresh_from_db()
    assert case.key == "mine"


def test_retired_case_cannot_be_changed_in_the_admin(client, dataset_owner):
    case = services.retire_case(trusted_case(), actor=dataset_owner, reason="obsolete")
    client.force_login(dataset_owner)
    page = client.get(change_url(case))

    response = client.post(change_url(case), {"key": "renamed", "user_message": "Hello?"})

    assert page.status_code == 200  # still viewable, read-only
    assert response.status_code == 403
    case.refresh_from_db()
    assert case.status == CaseStatus.RETIRED
    assert case.key != "renamed"


def test_retired_case_cannot_be_restored_from_its_history(client, dataset_owner):
    case = services.retire_case(trusted_case(), actor=dataset_owner, reason="obsolete")
    active_version = case.history.order_by("history_id")[1]
    client.force_login(dataset_owner)

    url = reverse("admin:datasets_app_case_simple_history", args=[case.pk, active_version.history_id])
    response = client.post(url, unchanged_form(client, case, url))

    assert response.status_code == 403
    case.refresh_from_db()
    assert case.status == CaseStatus.RETIRED


# lifecycle actions


def test_submit_action_sends_drafts_to_review(client, expert):
    case = make_case(make_dataset(), active=False, contributor=expert)
    client.force_login(expert)

    response = run_action(client, "submit_for_review", [case])

    assert "Submitted 1 item(s)." in messages_of(response)
    case.refresh_from_db()
    assert case.status == CaseStatus.IN_REVIEW


def test_audit_action_confirms_first_then_activates(client, expert, reviewer):
    case = services.submit_case(make_case(make_dataset(), active=False, contributor=expert), actor=expert)
    client.force_login(reviewer)

    confirm_page = run_action(client, "audit_and_activate", [case])

    assert confirm_page.status_code == 200
    assert confirm_page.templates[0].name == "admin/evalgate_confirm_action.html"
    assert "You cannot audit trusted cases you contributed or changed" in confirm_page.content.decode()
    case.refresh_from_db()
    assert case.status == CaseStatus.IN_REVIEW

    done = run_action(client, "audit_and_activate", [case], reason="")

    assert done.status_code == 302
    assert "Audit and activate 1 item(s)." in messages_of(done)
    case.refresh_from_db()
    assert (case.status, case.audited_by) == (CaseStatus.ACTIVE, reviewer)


def test_audit_action_on_own_trusted_case_shows_an_error_and_leaves_it_unchanged(client, dataset_owner):
    case = services.add_case(
        dataset=make_dataset(),
        key="own-case",
        failure_class=make_failure_class(),
        input=QUESTION,
        tier=Tier.TRUSTED,
        actor=dataset_owner,
    )
    case = services.submit_case(case, actor=dataset_owner)
    client.force_login(dataset_owner)

    response = run_action(client, "audit_and_activate", [case], reason="looks right")

    assert "own-case: A trusted case must be audited by someone other than its contributor." in messages_of(
        response
    )
    case.refresh_from_db()
    assert (case.status, case.audited_by, case.audited_at) == (CaseStatus.IN_REVIEW, None, None)


def test_audit_action_is_not_offered_to_a_domain_expert_and_a_raw_post_changes_nothing(client, expert):
    case = services.submit_case(make_case(make_dataset(), active=False), actor=expert)
    client.force_login(expert)
    changelist = client.get(reverse("admin:datasets_app_case_changelist"))
    offered = [name for name, _ in changelist.context["action_form"].fields["action"].choices]
    assert "submit_for_review" in offered and "audit_and_activate" not in offered

    response = run_action(client, "audit_and_activate", [case], reason="")

    assert "No action selected." in messages_of(response)
    case.refresh_from_db()
    assert case.status == CaseStatus.IN_REVIEW


def test_promote_action_confirms_first_then_moves_the_case_to_trusted(client, expert, reviewer):
    case = make_case(make_dataset(), tier=Tier.MONITORING, contributor=expert)
    client.force_login(reviewer)

    run_action(client, "promote_to_trusted", [case])
    case.refresh_from_db()
    assert case.tier == Tier.MONITORING

    run_action(client, "promote_to_trusted", [case], reason="")

    case.refresh_from_db()
    assert (case.tier, case.audited_by) == (Tier.TRUSTED, reviewer)


@pytest.mark.parametrize("action", ["demote", "retire"])
def test_demote_and_retire_without_a_reason_change_nothing(client, dataset_owner, action):
    case = trusted_case()
    client.force_login(dataset_owner)

    response = run_action(client, action, [case], reason="   ")

    assert response.status_code == 200  # the confirmation page again
    assert "Please write a reason: it is recorded with the decision." in messages_of(response)
    case.refresh_from_db()
    assert (case.tier, case.status) == (Tier.TRUSTED, CaseStatus.ACTIVE)


def test_demote_action_with_a_reason_moves_the_case_to_monitoring(client, dataset_owner):
    case = trusted_case()
    client.force_login(dataset_owner)

    run_action(client, "demote", [case], reason="reference answer disputed")

    case.refresh_from_db()
    assert case.tier == Tier.MONITORING
    assert (
        case.history.latest("history_id").history_change_reason
        == "demoted to monitoring: reference answer disputed"
    )


def test_retire_action_with_a_reason_retires_the_case_and_keeps_its_history(client, dataset_owner):
    case = trusted_case()
    history_before = case.history.count()
    client.force_login(dataset_owner)

    run_action(client, "retire", [case], reason="policy changed")

    case.refresh_from_db()
    assert case.status == CaseStatus.RETIRED
    assert case.history.count() == history_before + 1
    assert case.history.latest("history_id").history_change_reason == "retired: policy changed"
    assert case.history.latest("history_id").history_user == dataset_owner


# history and dataset pages


def test_history_page_shows_each_changed_field_old_to_new(client, expert):
    case = trusted_case(contributor=expert, expected={"answer": "No"})
    services.edit_case(case, actor=expert, expected={"answer": "Yes"})
    client.force_login(expert)

    page = client.get(reverse("admin:datasets_app_case_history", args=[case.pk])).content.decode()
    # django-simple-history lists each changed field as "<strong>Field:</strong> old &rarr; new".
    text = " ".join(page.replace("&nbsp;", " ").split())

    old, new = "{&#x27;answer&#x27;: &#x27;No&#x27;}", "{&#x27;answer&#x27;: &#x27;Yes&#x27;}"
    assert f"<strong>Expected:</strong> {old} &rarr; {new}" in text
    assert "<strong>Revision:</strong> 1 &rarr; 2" in text
    assert "<strong>Status:</strong> active &rarr; in_review" in text
    assert "<strong>Tier:</strong> monitoring &rarr; trusted" in text  # the audit into trusted
    assert "edited expected; trusted content changed, back to review" in text


def test_dataset_page_counts_cases_by_tier_failure_class_and_status(client, dataset_owner):
    dataset = make_dataset()
    factual, citation = make_failure_class("factual"), make_failure_class("citation")
    for _ in range(2):
        make_case(dataset, failure_class=factual, tier=Tier.TRUSTED)
    make_case(dataset, failure_class=factual, active=False)  # a monitoring draft
    make_case(dataset, failure_class=citation, tier=Tier.MONITORING)
    services.retire_case(
        make_case(dataset, failure_class=citation, tier=Tier.MONITORING), actor=dataset_owner, reason="old"
    )
    make_case(make_dataset(), failure_class=factual, tier=Tier.TRUSTED)  # another dataset: not counted
    client.force_login(dataset_owner)

    page = client.get(reverse("admin:datasets_app_dataset_change", args=[dataset.pk])).content.decode()

    assert (
        "<th>tier</th><th>failure class</th><th>draft</th><th>in review</th><th>active</th><th>retired</th>"
        in page
    )
    rows = page.split("<tbody>")[1].split("</tbody>")[0]
    assert rows == (
        "<tr><td>monitoring</td><td>citation</td><td>0</td><td>0</td><td>1</td><td>1</td></tr>"
        "<tr><td>monitoring</td><td>factual</td><td>1</td><td>0</td><td>0</td><td>0</td></tr>"
        "<tr><td>trusted</td><td>factual</td><td>0</td><td>0</td><td>2</td><td>0</td></tr>"
    )


# the changelist at scale


def test_case_changelist_query_count_is_the_same_at_1_and_at_10000_cases(client, expert):
    # Expected queries, whatever the number of cases:
    #   1. the session
    #   2. the logged-in user
    #   3. the user's own permissions
    #   4. the permissions of the user's groups (roles)
    #   5. the datasets listed by the "dataset" filter
    #   6. the failure classes listed by the "failure class" filter
    #   7. COUNT(*) of the filtered cases (show_full_result_count is off: no unfiltered count)
    #   8. the page of 100 cases, joined to dataset and failure class (list_select_related)
    case = make_case(make_dataset(), contributor=make_user(roles=("Domain expert",)))
    client.force_login(expert)

    with CaptureQueriesContext(connection) as one:
        assert client.get(CHANGELIST).status_code == 200

    Case.objects.bulk_create(
        Case(
            dataset_id=case.dataset_id,
            failure_class_id=case.failure_class_id,
            key=f"bulk-{i:05d}",
            tier=Tier.TRUSTED if i % 2 else Tier.MONITORING,
            status=CaseStatus.ACTIVE,
            input=QUESTION,
            expected={"answer": "No"},
        )
        for i in range(9_999)
    )
    assert Case.objects.count() == 10_000

    with CaptureQueriesContext(connection) as many:
        response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 100

    assert len(many) == len(one), json.dumps([q["sql"] for q in many.captured_queries], indent=1)
    assert len(many) == 8, "\n".join(q["sql"][:150] for q in many.captured_queries)
