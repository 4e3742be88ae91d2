"""Custom grader kinds from the modules named in settings.EVALGATE_GRADER_MODULES."""

import importlib
import sys
import textwrap
from io import StringIO

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.core.management import call_command

from grading_app import graders
from grading_app.graders import get_kind, kind_keys
from grading_app.graders.text import ExactMatch
from grading_app.models import Grade, Grader, Run
from grading_app.outputs import parse_outputs
from grading_app.services import save_grader, start_run
from tests.factories import make_scenario, make_user, outputs_for

SHOUTING = """
from django.core.exceptions import ValidationError

from grading_app.graders import ConfigField, GradeOutcome, GraderKind, register


@register
class Shouting(GraderKind):
    key = "shouting"
    dimension = "format"
    description = "The output is written in capitals."
    config_fields = {"min_share": ConfigField((int, float), 1.0, "Share of letters in capitals.")}

    def check_config(self, config):
        if not 0 <= config["min_share"] <= 1:
            raise ValidationError({"config": "shouting: config.min_share must be between 0 and 1."})

    def grade(self, item, config):
        letters = [c for c in item.output_text if c.isalpha()]
        if not letters:
            return None
        share = sum(c.isupper() for c in letters) / len(letters)
        return GradeOutcome(share, share >= config["min_share"], f"{share:.0%} in capitals")
"""


def kind_module(key: str) -> str:
    """A module registering a trivial kind under ``key``."""
    return f'''
from grading_app.graders import GradeOutcome, GraderKind, register


@register
class Impostor(GraderKind):
    key = "{key}"
    dimension = "correctness"

    def grade(self, item, config):
        return GradeOutcome(1.0, True, "always")
'''


@pytest.fixture
def grader_modules(tmp_path, monkeypatch, settings):
    """Install custom grader modules: ``install(name, source)`` writes one and names it in settings.

    The registry is a copy for the test, with custom modules not loaded yet, so what a test registers
    disappears with it; the modules leave sys.modules too.
    """
    names: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(graders, "_KINDS", dict(graders._KINDS))
    monkeypatch.setattr(graders, "_loaded_custom", False)
    settings.EVALGATE_GRADER_MODULES = []

    def install(name: str, source: str) -> None:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        importlib.invalidate_caches()  # the directory listing may be cached from before the write
        names.append(name)
        settings.EVALGATE_GRADER_MODULES = list(names)

    yield install
    for name in names:
        sys.modules.pop(name, None)


def test_custom_modules_are_imported_on_the_first_lookup_not_before(grader_modules):
    grader_modules("team_graders", SHOUTING)
    assert "team_graders" not in sys.modules

    keys = kind_keys()

    assert "shouting" in keys
    assert "exact_match" in keys
    assert "team_graders" in sys.modules
    assert get_kind("shouting").dimension == "format"


def test_get_kind_alone_loads_the_custom_modules(grader_modules):
    grader_modules("team_graders", SHOUTING)

    kind = get_kind("shouting")

    assert kind.validate_config({}) == {"min_share": 1.0}


@pytest.mark.django_db
def test_a_custom_kind_is_saved_with_its_validated_config_and_graded_in_a_run(
    grader_modules, django_capture_on_commit_callbacks
):
    grader_modules("team_graders", SHOUTING)
    s = make_scenario(n_trusted=3, n_monitoring=1)
    grader = save_grader(slug="loud", kind="shouting", config={"min_share": 0.5})
    assert (grader.kind, grader.dimension, grader.config) == ("shouting", "format", {"min_share": 0.5})
    items = outputs_for(s["cases"][:3], answer="NO") + outputs_for(s["cases"][3:], answer="no")

    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=s["dataset"], candidate="v1", outputs=parse_outputs(items))

    run = Run.objects.get(pk=run.pk)
    assert run.status == "succeeded"
    grades = {
        g.case_result.case.key: g
        for g in Grade.objects.filter(case_result__run=run, grader=grader).select_related("case_result__case")
    }
    assert {key: (g.passed, g.score) for key, g in grades.items()} == {
        "t0": (True, 1.0),
        "t1": (True, 1.0),
        "t2": (True, 1.0),
        "m0": (False, 0.0),
    }
    assert grades["t0"].rationale == "100% in capitals"
    assert run.summary["graders"]["loud"]["pass_rate"] == 0.75
    # The built-in grader still grades alongside it: "NO" and "no" both normalise to the answer.
    assert run.summary["graders"]["answer-exact"]["pass_rate"] == 1.0


@pytest.mark.django_db
def test_a_custom_kind_validates_its_own_config(grader_modules):
    grader_modules("team_graders", SHOUTING)

    with pytest.raises(ValidationError, match="min_share must be between 0 and 1"):
        save_grader(slug="loud", kind="shouting", config={"min_share": 2})
    with pytest.raises(ValidationError, match=r"Unknown key.*volume"):
        save_grader(slug="loud", kind="shouting", config={"volume": 11})
    assert not Grader.objects.exists()


@pytest.mark.django_db
def test_a_custom_kind_can_be_declared_in_a_config_file(grader_modules, tmp_path):
    grader_modules("team_graders", SHOUTING)
    path = tmp_path / "evals.yaml"
    path.write_text(yaml.safe_dump({"graders": [{"slug": "loud", "kind": "shouting"}]}), encoding="utf-8")

    call_command("apply_config", str(path), "--as", make_user().username, stdout=StringIO())

    grader = Grader.objects.get(slug="loud")
    assert (grader.kind, grader.dimension, grader.config) == ("shouting", "format", {"min_share": 1.0})


def test_a_custom_kind_reusing_a_built_in_key_raises_value_error(grader_modules):
    grader_modules("bad_graders", kind_module("exact_match"))

    with pytest.raises(ValueError, match="'exact_match' is registered twice"):
        kind_keys()

    assert type(get_kind("exact_match")) is ExactMatch  # the built-in kept its key


def test_two_custom_modules_registering_the_same_key_raise_value_error(grader_modules):
    grader_modules("team_graders", kind_module("house_style"))
    grader_modules("other_graders", kind_module("house_style"))

    with pytest.raises(ValueError, match="'house_style' is registered twice"):
        get_kind("house_style")


def test_registering_the_same_class_twice_is_harmless(grader_modules):
    grader_modules("team_graders", SHOUTING)
    kind = get_kind("shouting")

    graders.register(type(kind))

    assert type(get_kind("shouting")) is type(kind)
