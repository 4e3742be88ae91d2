"""copy_insert without conflicts to skip COPYs straight into the table, drawing primary keys
from the table's sequence when it must return them: the same rows as the ORM, the ids it
returns are the rows' own, and a conflict writes nothing."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.forms.models import model_to_dict

from evalproject.bulk import copy_insert
from monitoring_app.models import Trace
from tests.monitoring.test_insert_path import row

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's"),
]


def test_returned_ids_are_the_rows_own_and_the_rows_are_what_the_orm_writes():
    from tests.factories import make_source

    source = make_source()
    rows = [row(source, f"c{n}", latency_ms=float(n)) for n in range(5)]
    written = copy_insert(Trace, rows, returning=("client_id", "id", "latency_ms"))
    assert sorted(c for c, _, _ in written) == [f"c{n}" for n in range(5)]
    for client_id, pk, latency in written:
        stored = Trace.objects.get(pk=pk)
        assert stored.client_id == client_id and stored.latency_ms == latency
    Trace.objects.bulk_create([Trace(**row(source, "orm", latency_ms=0.0))])
    ignored = ("id", "client_id", "received_at")
    assert model_to_dict(Trace.objects.get(client_id="c0"), exclude=ignored) == model_to_dict(
        Trace.objects.get(client_id="orm"), exclude=ignored
    )
    # The sequence moved past the drawn ids: the ORM's next row does not collide.
    assert Trace.objects.get(client_id="orm").pk > max(pk for _, pk, _ in written)


def test_a_conflicting_row_writes_none_of_them():
    from tests.factories import make_source

    source = make_source()
    copy_insert(Trace, [row(source, "a")])
    with pytest.raises(IntegrityError), transaction.atomic():
        copy_insert(Trace, [row(source, "b"), row(source, "a")], returning=("id",))
    assert sorted(Trace.objects.values_list("client_id", flat=True)) == ["a"]
