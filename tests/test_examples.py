"""The example config in examples/ applies cleanly, twice, as the README says."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from gates_app.models import Gate
from grading_app.choices import RubricState
from grading_app.models import RubricVersion
from tests.factories import make_user

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "support-bot.yaml"


@pytest.mark.django_db
def test_example_config_applies_and_reapplying_changes_nothing():
    make_user("alice", roles=("Rubric owner",))
    make_user("bob", roles=("Rubric owner", "Gate owner", "Reviewer", "Dataset owner"))
    make_user("carol", roles=("Release approver",))
    call_command("apply_config", str(EXAMPLE), "--as", "bob", stdout=StringIO())
    gate = Gate.objects.get(slug="support-release")
    assert gate.rules.count() == 5 and gate.default_target.slug == "candidate-model"
    assert RubricVersion.objects.get(rubric__slug="helpfulness").state == RubricState.APPROVED
    out = StringIO()
    call_command("apply_config", str(EXAMPLE), "--as", "bob", stdout=out)
    assert "changed 0 object group(s)" in out.getvalue()
