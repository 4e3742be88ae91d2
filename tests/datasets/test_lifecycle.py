"""Case lifecycle services: draft -> in_review -> active (audited) -> retired, and the refusals."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from datasets_app import services
from datasets_app.choices import CaseStatus, Tier
from datasets_app.models import Case
from tests.factories import make_case, make_dataset, make_failure_class, make_user

pytestmark = pytest.mark.django_db

QUESTION = {"messages": [{"role": "user", "content": "Can I get a refund after 40 days?"}]}


def draft(contributor, *, tier: str = Tier.TRUSTED, key: str = "refund-40", **fields) -> Case:
    return services.add_case(
        dataset=make_dataset(),
        key=key,
        failure_class=make_failure_class(),
        input=QUESTION,
        expected={"answer": "No"},
        tier=tier,
        actor=contributor,
        **fields,
    )


def reasons(case: Case) -> list[str]:
    """The history reasons of a case, oldest first."""
    return list(case.history.order_by("history_id").values_list("history_change_reason", flat=True))


def test_added_case_is_a_draft_at_revision_one_contributed_by_its_author(expert):
    case = draft(expert)

    assert case.status == CaseStatus.DRAFT
    assert case.revision == 1
    assert case.contributed_by == expert
    assert case.audited_by is None
    assert case.history.get().history_user == expert


def test_case_goes_draft_to_review_to_active_to_retired_recording_who_did_each_step(
    expert, reviewer, dataset_owner
):
    case = draft(expert)

    case = services.submit_case(case, actor=expert)
    assert case.status == CaseStatus.IN_REVIEW

    case = services.audit_case(case, actor=reviewer)
    assert case.status == CaseStatus.ACTIVE
    assert case.tier == Tier.TRUSTED
    assert case.audited_by == reviewer
    assert case.audited_at is not None

    case = services.retire_case(case, actor=dataset_owner, reason="policy changed")
    assert case.status == CaseStatus.RETIRED

    assert reasons(case) == [
        "added",
        "submitted for review",
        "audited into trusted",
        "retired: policy changed",
    ]
    users = list(case.history.order_by("history_id").values_list("history_user__username", flat=True))
    assert users == ["expert", "expert", "reviewer", "dataset_owner"]


def test_only_draft_cases_can_be_submitted(expert):
    case = services.submit_case(draft(expert), actor=expert)

    with pytest.raises(ValidationError, match="Only draft cases"):
        services.submit_case(case, actor=expert)


def test_contributor_cannot_audit_own_case_into_trusted_tier_and_case_stays_in_review(dataset_owner):
    # The dataset owner may both add and audit cases: only the four-eyes rule stops them.
    case = services.submit_case(draft(dataset_owner), actor=dataset_owner)

    with pytest.raises(PermissionDenied, match="someone other than its contributor"):
        services.audit_case(case, actor=dataset_owner)

    case.refresh_from_db()
    assert case.status == CaseStatus.IN_REVIEW
    assert case.audited_by is None
    assert reasons(case) == ["added", "submitted for review"]


def test_contributor_cannot_audit_own_monitoring_draft_into_trusted_tier(dataset_owner):
    case = draft(dataset_owner, tier=Tier.MONITORING)

    with pytest.raises(PermissionDenied):
        services.audit_case(case, actor=dataset_owner, tier=Tier.TRUSTED)

    case.refresh_from_db()
    assert (case.status, case.tier) == (CaseStatus.DRAFT, Tier.MONITORING)


def test_contributor_may_audit_own_case_into_monitoring_tier(dataset_owner):
    # Monitoring cases only watch for drift; the four-eyes rule guards release decisions.
    case = services.audit_case(draft(dataset_owner, tier=Tier.MONITORING), actor=dataset_owner)

    assert (case.status, case.tier, case.audited_by) == (CaseStatus.ACTIVE, Tier.MONITORING, dataset_owner)


def test_audit_into_trusted_tier_by_someone_else_makes_it_trusted(expert, reviewer):
    case = services.audit_case(draft(expert, tier=Tier.MONITORING), actor=reviewer, tier=Tier.TRUSTED)

    assert (case.status, case.tier, case.audited_by) == (CaseStatus.ACTIVE, Tier.TRUSTED, reviewer)


@pytest.mark.parametrize("status", [CaseStatus.ACTIVE, CaseStatus.RETIRED])
def test_only_draft_or_in_review_cases_can_be_audited(expert, reviewer, dataset_owner, status):
    case = services.audit_case(draft(expert), actor=reviewer)
    if status == CaseStatus.RETIRED:
        case = services.retire_case(case, actor=dataset_owner, reason="obsolete")

    with pytest.raises(ValidationError, match="Only draft or in-review"):
        services.audit_case(case, actor=make_user(roles=("Reviewer",)))


def test_promote_moves_active_monitoring_case_to_trusted_with_the_promoter_as_auditor(expert, reviewer):
    case = make_case(make_dataset(), tier=Tier.MONITORING, contributor=expert)

    case = services.promote_case(case, actor=reviewer)

    assert (case.status, case.tier, case.audited_by) == (CaseStatus.ACTIVE, Tier.TRUSTED, reviewer)
    assert reasons(case)[-1] == "promoted to trusted"


def test_contributor_cannot_promote_own_case_to_trusted(dataset_owner):
    case = services.audit_case(draft(dataset_owner, tier=Tier.MONITORING), actor=dataset_owner)

    with pytest.raises(PermissionDenied, match="someone other than its contributor"):
        services.promote_case(case, actor=dataset_owner)

    case.refresh_from_db()
    assert case.tier == Tier.MONITORING


@pytest.mark.parametrize("tier, active", [(Tier.TRUSTED, True), (Tier.MONITORING, False)])
def test_only_active_monitoring_cases_can_be_promoted(expert, reviewer, tier, active):
    case = make_case(make_dataset(), tier=tier, active=active, contributor=expert)

    with pytest.raises(ValidationError, match="Only active monitoring"):
        services.promote_case(case, actor=reviewer)


def test_editing_content_of_active_trusted_case_sends_it_back_to_review_and_bumps_revision(expert, reviewer):
    case = make_case(make_dataset(), tier=Tier.TRUSTED, contributor=expert, auditor=reviewer)

    case = services.edit_case(case, actor=expert, expected={"answer": "No, only within 30 days"})

    assert case.status == CaseStatus.IN_REVIEW
    assert case.tier == Tier.TRUSTED
    assert case.revision == 2
    assert case.expected == {"answer": "No, only within 30 days"}
    assert reasons(case)[-1] == "edited expected; trusted content changed, back to review"


@pytest.mark.parametrize(
    "change",
    [
        {"input": {"messages": [{"role": "user", "content": "Refund after 45 days?"}]}},
        {"risk": "high"},
        {"tags": ["refunds"]},
        {"pinned": True},
    ],
)
def test_every_content_field_counts_as_a_new_revision_of_a_trusted_case(expert, reviewer, change):
    case = make_case(make_dataset(), tier=Tier.TRUSTED, contributor=expert, auditor=reviewer)

    case = services.edit_case(case, actor=reviewer, **change)

    assert (case.status, case.revision) == (CaseStatus.IN_REVIEW, 2)


def test_changing_failure_class_of_trusted_case_sends_it_back_to_review(expert, reviewer):
    case = make_case(make_dataset(), tier=Tier.TRUSTED, contributor=expert, auditor=reviewer)

    case = services.edit_case(case, actor=expert, failure_class=make_failure_class("citation"))

    assert (case.status, case.revision) == (CaseStatus.IN_REVIEW, 2)


def test_editing_content_of_active_monitoring_case_bumps_revision_and_keeps_it_active(expert, reviewer):
    case = make_case(make_dataset(), tier=Tier.MONITORING, contributor=expert, auditor=reviewer)

    case = services.edit_case(case, actor=expert, expected={"answer": "Only within 30 days"})

    assert (case.status, case.revision) == (CaseStatus.ACTIVE, 2)


def test_renaming_a_case_key_is_not_a_new_revision(expert, reviewer):
    case = make_case(make_dataset(), key="old-key", tier=Tier.TRUSTED, contributor=expert, auditor=reviewer)

    case = services.edit_case(case, actor=expert, key="new-key")

    assert (case.key, case.status, case.revision) == ("new-key", CaseStatus.ACTIVE, 1)


def test_edit_that_changes_nothing_writes_no_history_and_keeps_the_revision(expert, reviewer):
    case = make_case(make_dataset(), tier=Tier.TRUSTED, contributor=expert, auditor=reviewer)
    before = case.history.count()

    case = services.edit_case(case, actor=expert, expected=dict(case.expected), input=dict(case.input))

    assert (case.status, case.revision) == (CaseStatus.ACTIVE, 1)
    assert case.history.count() == before


@pytest.mark.parametrize("field, value", [("status", CaseStatus.ACTIVE), ("tier", Tier.TRUSTED)])
def test_edit_cannot_change_status_or_tier_around_the_audit(expert, field, value):
    case = draft(expert, tier=Tier.MONITORING)

    with pytest.raises(ValidationError, match="cannot be edited here"):
        services.edit_case(case, actor=expert, **{field: value})

    case.refresh_from_db()
    assert (case.status, case.tier) == (CaseStatus.DRAFT, Tier.MONITORING)


def test_edit_validates_conventional_expected_keys(expert):
    case = draft(expert)

    with pytest.raises(ValidationError) as refused:
        services.edit_case(case, actor=expert, expected={"must_refuse": "yes"})

    assert refused.value.message_dict["expected"] == ["expected.must_refuse must be true or false."]
    case.refresh_from_db()
    assert case.expected == {"answer": "No"}


def test_retired_case_cannot_be_edited(expert, reviewer, dataset_owner):
    case = services.retire_case(
        make_case(make_dataset(), contributor=expert, auditor=reviewer),
        actor=dataset_owner,
        reason="obsolete",
    )

    with pytest.raises(ValidationError, match="retired case cannot be edited"):
        services.edit_case(case, actor=dataset_owner, expected={"answer": "Yes"})


def test_retiring_keeps_the_case_and_its_whole_history(expert, reviewer, dataset_owner):
    case = make_case(make_dataset(), contributor=expert, auditor=reviewer)
    case = services.edit_case(case, actor=expert, expected={"answer": "No, 30 days"})
    case = services.audit_case(case, actor=reviewer)
    history_before = list(case.history.values_list("history_id", flat=True))

    case = services.retire_case(case, actor=dataset_owner, reason="superseded by refund-v2")

    assert Case.objects.filter(pk=case.pk, status=CaseStatus.RETIRED).exists()
    assert set(history_before) < set(case.history.values_list("history_id", flat=True))
    assert reasons(case) == [
        "added",
        "audited into trusted",
        "edited expected; trusted content changed, back to review",
        "audited into trusted",
        "retired: superseded by refund-v2",
    ]
    first = case.history.earliest("history_id")
    assert first.expected == {"answer": "No"} and first.revision == 1


def test_retiring_a_retired_case_is_refused(expert, reviewer, dataset_owner):
    case = make_case(make_dataset(), contributor=expert, auditor=reviewer)
    case = services.retire_case(case, actor=dataset_owner, reason="obsolete")

    with pytest.raises(ValidationError, match="already retired"):
        services.retire_case(case, actor=dataset_owner, reason="again")


def test_retiring_with_a_long_reason_keeps_the_whole_reason(expert, reviewer, dataset_owner):
    case = make_case(make_dataset(), contributor=expert, auditor=reviewer)
    reason = (
        "Superseded by the refund-policy-v2 cases after the 2025 policy change: the 40-day window "
        "no longer applies to EU customers, so this expectation is wrong for them."
    )

    case = services.retire_case(case, actor=dataset_owner, reason=reason)

    assert reasons(case)[-1] == f"retired: {reason}"


def test_demote_moves_trusted_case_to_monitoring_with_the_reason_in_history(expert, reviewer, dataset_owner):
    case = make_case(make_dataset(), tier=Tier.TRUSTED, contributor=expert, auditor=reviewer)

    case = services.demote_case(case, actor=dataset_owner, reason="flaky reference answer")

    assert (case.status, case.tier) == (CaseStatus.ACTIVE, Tier.MONITORING)
    assert reasons(case)[-1] == "demoted to monitoring: flaky reference answer"


def test_only_trusted_cases_can_be_demoted(expert, reviewer, dataset_owner):
    case = make_case(make_dataset(), tier=Tier.MONITORING, contributor=expert, auditor=reviewer)

    with pytest.raises(ValidationError, match="Only trusted cases"):
        services.demote_case(case, actor=dataset_owner, reason="noise")


def test_editor_of_trusted_content_cannot_audit_their_own_edit(expert, reviewer):
    case = make_case(make_dataset(), tier=Tier.TRUSTED, contributor=expert, auditor=reviewer)
    case = services.edit_case(case, actor=reviewer, expected={"answer": "Yes"})

    with pytest.raises(PermissionDenied):
        services.audit_case(case, actor=reviewer)
