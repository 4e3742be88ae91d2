"""Roles: who may move a case through its lifecycle, which admin pages each role reaches, no deletes."""

import pytest
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory
from django.urls import reverse

from datasets_app import services
from datasets_app.choices import CaseStatus, Tier
from datasets_app.models import Case, Dataset, FailureClass, Incident
from tests.factories import make_case, make_dataset, make_failure_class, make_user

pytestmark = pytest.mark.django_db

QUESTION = {"messages": [{"role": "user", "content": "Can I get a refund after 40 days?"}]}
GOVERNED = [Case, Dataset, FailureClass, Incident]


def add(actor) -> Case:
    return services.add_case(
        dataset=make_dataset(),
        key="refund-40",
        failure_class=make_failure_class(),
        input=QUESTION,
        tier=Tier.TRUSTED,
        actor=actor,
    )


def test_domain_expert_can_add_and_submit_a_case(expert):
    case = services.submit_case(add(expert), actor=expert)

    assert case.status == CaseStatus.IN_REVIEW


def test_domain_expert_cannot_audit_even_someone_elses_case(expert):
    case = services.submit_case(add(make_user(roles=("Domain expert",))), actor=expert)

    with pytest.raises(PermissionDenied, match="not allowed to audit cases"):
        services.audit_case(case, actor=expert)

    case.refresh_from_db()
    assert case.status == CaseStatus.IN_REVIEW
    assert case.audited_by is None


def test_reviewer_audits_a_domain_experts_case(expert, reviewer):
    case = services.audit_case(services.submit_case(add(expert), actor=expert), actor=reviewer)

    assert (case.status, case.audited_by) == (CaseStatus.ACTIVE, reviewer)


def test_reviewer_cannot_add_cases(reviewer):
    with pytest.raises(PermissionDenied, match="not allowed to add cases"):
        add(reviewer)

    assert not Case.objects.exists()


def test_domain_expert_cannot_promote_demote_or_retire(expert, reviewer):
    monitoring = make_case(make_dataset(), tier=Tier.MONITORING, auditor=reviewer)
    trusted = make_case(make_dataset(), tier=Tier.TRUSTED, auditor=reviewer)

    with pytest.raises(PermissionDenied):
        services.promote_case(monitoring, actor=expert)
    with pytest.raises(PermissionDenied):
        services.demote_case(trusted, actor=expert, reason="noise")
    with pytest.raises(PermissionDenied):
        services.retire_case(trusted, actor=expert, reason="obsolete")

    monitoring.refresh_from_db()
    trusted.refresh_from_db()
    assert monitoring.tier == Tier.MONITORING
    assert (trusted.tier, trusted.status) == (Tier.TRUSTED, CaseStatus.ACTIVE)


def test_reviewer_promotes_but_cannot_demote_or_retire(expert, reviewer):
    case = make_case(make_dataset(), tier=Tier.MONITORING, contributor=expert)

    case = services.promote_case(case, actor=reviewer)
    assert case.tier == Tier.TRUSTED

    with pytest.raises(PermissionDenied):
        services.demote_case(case, actor=reviewer, reason="noise")
    with pytest.raises(PermissionDenied):
        services.retire_case(case, actor=reviewer, reason="obsolete")


def test_dataset_owner_demotes_and_retires(expert, dataset_owner):
    case = make_case(make_dataset(), tier=Tier.TRUSTED, contributor=expert)

    case = services.demote_case(case, actor=dataset_owner, reason="noisy reference")
    case = services.retire_case(case, actor=dataset_owner, reason="obsolete")

    assert (case.tier, case.status) == (Tier.MONITORING, CaseStatus.RETIRED)


@pytest.mark.parametrize(
    "url",
    [
        "/admin/gates_app/gate/",
        "/admin/gates_app/gate/add/",
        "/admin/gates_app/deploytoken/",
        "/admin/gates_app/deploytoken/add/",
        "/admin/grading_app/grader/",
        "/admin/grading_app/grader/add/",
    ],
)
def test_domain_expert_gets_403_on_gate_token_and_grader_admin_pages(client, expert, url):
    client.force_login(expert)

    assert client.get(url).status_code == 403


def test_domain_expert_reaches_the_case_admin(client, expert):
    client.force_login(expert)

    assert client.get("/admin/datasets_app/case/").status_code == 200
    assert client.get("/admin/datasets_app/case/add/").status_code == 200


def test_reviewer_cannot_open_the_add_case_page(client, reviewer):
    client.force_login(reviewer)

    assert client.get("/admin/datasets_app/case/").status_code == 200
    assert client.get("/admin/datasets_app/case/add/").status_code == 403


@pytest.mark.parametrize(
    "persona, url",
    [
        ("gate_owner", "/admin/gates_app/gate/"),
        ("gate_owner", "/admin/gates_app/deploytoken/"),
        ("rubric_owner", "/admin/grading_app/grader/"),
    ],
)
def test_owners_reach_the_admin_pages_domain_experts_are_refused(client, request, persona, url):
    client.force_login(request.getfixturevalue(persona))

    assert client.get(url).status_code == 200


@pytest.mark.parametrize("model", GOVERNED, ids=lambda m: m.__name__)
def test_superuser_has_no_delete_permission_on_governed_models(model):
    request = RequestFactory().get("/")
    request.user = make_user(is_staff=True, is_superuser=True)

    model_admin = admin.site._registry[model]

    assert model_admin.has_delete_permission(request) is False
    assert "delete_selected" not in model_admin.get_actions(request)


def governed_rows() -> dict[type, object]:
    owner = make_user(roles=("Dataset owner",))
    case = make_case(make_dataset(owner=owner))
    incident = services.report_incident(title="Refund promised after 40 days", actor=owner)
    return {Case: case, Dataset: case.dataset, FailureClass: case.failure_class, Incident: incident}


def test_superuser_delete_pages_of_governed_rows_answer_403_and_keep_the_rows(client):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))

    for model, row in governed_rows().items():
        meta = model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_delete", args=[row.pk])
        assert client.get(url).status_code == 403, url
        assert client.post(url, {"post": "yes"}).status_code == 403, url
        assert model.objects.filter(pk=row.pk).exists()


def test_history_of_governed_rows_can_be_read_but_not_reverted(client):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))

    for model, row in governed_rows().items():
        meta = model._meta
        first = row.history.earliest("history_id")
        history = reverse(f"admin:{meta.app_label}_{meta.model_name}_history", args=[row.pk])
        version = reverse(
            f"admin:{meta.app_label}_{meta.model_name}_simple_history", args=[row.pk, first.history_id]
        )
        assert "revert" not in client.get(history).content.decode().lower(), history
        page = client.get(version)
        assert page.status_code == 200, version
        assert 'name="_save"' not in page.content.decode(), version
        assert client.post(version, {}).status_code == 403, version
