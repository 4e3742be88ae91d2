"""Multi-turn cases as code: examples/multi-turn.yaml applies (a persona rubric, a conversation
judge, a scripted and a simulated case), and a simulated user naming no rubric is refused by path."""

from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from datasets_app.models import Case
from grading_app.choices import RubricState
from grading_app.models import RubricVersion
from grading_app.models.rubrics import CONVERSATION_PROMPT_TEMPLATE, SIMULATED_USER_PROMPT_TEMPLATE
from tests.factories import make_user

pytestmark = pytest.mark.django_db

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "multi-turn.yaml"


@pytest.fixture(autouse=True)
def users():
    make_user("alice", roles=("Rubric owner",))
    make_user("bob", roles=("Rubric owner", "Gate owner", "Reviewer", "Dataset owner"))


def apply(path: Path) -> str:
    out = StringIO()
    call_command("apply_config", str(path), "--as", "bob", stdout=out)
    return out.getvalue()


def test_the_multi_turn_example_applies_with_its_persona_and_conversation_judge_signed_off():
    apply(EXAMPLE)

    persona = RubricVersion.objects.get(rubric__slug="impatient-customer")
    judge = RubricVersion.objects.get(rubric__slug="resolves-conversation")
    assert (persona.state, persona.prompt_template) == (RubricState.APPROVED, SIMULATED_USER_PROMPT_TEMPLATE)
    assert (judge.state, judge.prompt_template) == (RubricState.APPROVED, CONVERSATION_PROMPT_TEMPLATE)
    cases = {
        c.key: c.input for c in Case.objects.filter(dataset__slug="support-conversations", status="active")
    }
    assert len(cases["lost-parcel-scripted"]["turns"]) == 3
    assert cases["lost-parcel-simulated"]["simulated_user"]["rubric"] == "impatient-customer"
    assert "changed 0 object group(s)" in apply(EXAMPLE)


def test_a_simulated_user_naming_no_rubric_is_refused_by_path_and_nothing_is_applied(tmp_path):
    data = yaml.safe_load(EXAMPLE.read_text())
    data["datasets"][0]["cases"][1]["input"]["simulated_user"]["rubric"] = "patient-customer"
    path = tmp_path / "evals.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")

    with pytest.raises(CommandError) as failed:
        apply(path)

    assert "datasets[0].cases[1].input.simulated_user.rubric: no rubric 'patient-customer'" in str(
        failed.value
    )
    assert not Case.objects.exists() and not RubricVersion.objects.exists()
