"""``field__any_of``: the same rows as ``field__in``, as one array parameter on PostgreSQL."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from datasets_app.models import Case
from grading_app.models import CaseResult, Run
from tests.factories import make_case, make_dataset

pytestmark = pytest.mark.django_db


def test_any_of_selects_what_in_selects_by_id_key_and_relation():
    dataset = make_dataset("d")
    cases = [make_case(dataset, key=f"k{i}") for i in range(5)]
    run = Run.objects.create(dataset=dataset, candidate="v1")
    for case in cases[:3]:
        CaseResult.objects.create(run=run, case=case, case_revision=case.revision)
    ids = [cases[0].pk, cases[2].pk, cases[4].pk, 10**9]
    assert (
        set(Case.objects.filter(pk__any_of=ids))
        == set(Case.objects.filter(pk__in=ids))
        == {cases[0], cases[2], cases[4]}
    )
    assert set(Case.objects.filter(key__any_of=["k1", "k3", "nope"]).values_list("key", flat=True)) == {
        "k1",
        "k3",
    }
    assert set(CaseResult.objects.filter(case_id__any_of=ids).values_list("case_id", flat=True)) == {
        cases[0].pk,
        cases[2].pk,
    }
    assert set(CaseResult.objects.filter(case__any_of=ids).values_list("case_id", flat=True)) == {
        cases[0].pk,
        cases[2].pk,
    }
    assert list(Case.objects.filter(pk__any_of=[])) == []
    assert set(Case.objects.exclude(pk__any_of=[cases[0].pk])) == set(cases[1:])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the array parameter is PostgreSQL's")
def test_a_thousand_ids_are_one_parameter_on_postgresql():
    dataset = make_dataset("d")
    case = make_case(dataset, key="k")
    ids = [case.pk, *range(10**9, 10**9 + 999)]
    with CaptureQueriesContext(connection) as queries:
        assert list(Case.objects.filter(pk__any_of=ids).values_list("pk", flat=True)) == [case.pk]
    assert "= ANY(" in queries[0]["sql"] and "IN (" not in queries[0]["sql"]
