"""Admin walk (Low): a gate's pinned baseline accepted a raw id of another gate's check (a
failed check of support-release became walk-gate's baseline). A baseline is a check of its
own gate, whatever form or code sets it."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from gates_app.models import Check, Gate
from gates_app.services import request_check
from tests.factories import make_dataset, make_gate, make_scenario, outputs_for

pytestmark = pytest.mark.django_db


def gate_form(gate: Gate, **changes) -> dict:
    return {
        "slug": gate.slug,
        "name": gate.name,
        "owner": gate.owner_id,
        "dataset": gate.dataset_id,
        "required_approvals": gate.required_approvals,
        "missing_tolerance": gate.missing_tolerance,
        "production_window_hours": gate.production_window_hours,
        "production_min_traces": gate.production_min_traces,
        "active": "on",
        "rules-TOTAL_FORMS": 0,
        "rules-INITIAL_FORMS": 0,
        **changes,
    }


def test_a_gate_pins_only_its_own_checks_as_baseline(client, gate_owner):
    dataset = make_dataset("support")
    mine = make_gate(dataset, "walk-gate", owner=gate_owner)
    other = make_gate(dataset, "support-release")
    theirs = Check.objects.create(gate=other, candidate="v2.4.0-rc1")
    own = Check.objects.create(gate=mine, candidate="v1")
    mine.baseline_check = theirs
    with pytest.raises(ValidationError, match=f"Check {theirs.pk} is not a check of this gate"):
        mine.full_clean()

    client.force_login(gate_owner)
    url = reverse("admin:gates_app_gate_change", args=[mine.pk])
    refused = client.post(url, gate_form(mine, baseline_check=theirs.pk))
    accepted = client.post(url, gate_form(mine, baseline_check=own.pk))

    assert refused.status_code == 200 and "is not a check of this gate" in refused.content.decode()
    assert accepted.status_code == 302, accepted.content.decode()[:2000]
    assert Gate.objects.get(pk=mine.pk).baseline_check_id == own.pk


def test_another_gates_check_pinned_before_the_rule_is_not_compared_with(django_capture_on_commit_callbacks):
    """A pin stored before the rule (written here past validation, as old rows were) is never
    a verdict's baseline: the check compares with its own gate's latest allowed check and says so."""
    scenario = make_scenario()
    gate = scenario["gate"]
    other = make_gate(scenario["dataset"], "other-gate", owner=scenario["owner"])

    def decided(gate: Gate, candidate: str) -> Check:
        with django_capture_on_commit_callbacks(execute=True):
            check, _ = request_check(gate=gate, candidate=candidate, outputs=outputs_for(scenario["cases"]))
        return check

    foreign = decided(other, "theirs")
    own = decided(gate, "v1")
    Gate.objects.filter(pk=gate.pk).update(baseline_check=foreign)

    check = decided(gate, "v2")

    check.refresh_from_db()
    assert check.status == "done" and check.baseline_id == own.pk
    assert f"check {foreign.pk}, is a check of another gate" in check.metadata["baseline_note"]
