"""manage.py apply_config: endpoints, rubrics (with sign-off) and graders as code."""

import copy
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from datasets_app.models import Dataset, FailureClass
from grading_app.choices import RubricState
from grading_app.models import Endpoint, Grader, Rubric, RubricVersion, RubricVersionEvent
from grading_app.services import rubric_version_for
from tests.factories import make_failure_class, make_user

pytestmark = pytest.mark.django_db

VERSION_1 = {
    "criteria": "The answer is correct and grounded in the refund policy.",
    "scale": "binary",
    "pass_threshold": 1,
    "endpoint": "local",
    "model": "judge-model",
    "author": "alice",
    "approved_by": "bob",
}

CONFIG = {
    "failure_classes": [{"slug": "factual", "name": "Factual correctness"}],
    "endpoints": [
        {
            "name": "local",
            "base_url": "http://127.0.0.1:9999/v1",
            "api_key_env": "OPENAI_API_KEY",
            "max_concurrency": 16,
            "timeout_s": 30,
            "price_in_per_mtok": 0.15,
            "price_out_per_mtok": 0.6,
        }
    ],
    "rubrics": [{"slug": "helpfulness", "owner": "bob", "versions": [VERSION_1]}],
    "graders": [
        {
            "slug": "answer-exact",
            "kind": "exact_match",
            "dimension": "correctness",
            "config": {"expected_field": "answer", "normalize": True},
            "failure_classes": ["factual"],
        },
        {"slug": "refusal", "kind": "refusal", "dimension": "safety"},
        {"slug": "helpful", "kind": "llm_judge", "dimension": "correctness", "rubric": "helpfulness"},
    ],
}


@pytest.fixture
def alice(db):
    """Writes rubric versions."""
    return make_user("alice", roles=("Rubric owner",))


@pytest.fixture
def bob(db):
    """Owns the rubric, signs off alice's versions and applies the config."""
    return make_user("bob", roles=("Rubric owner",))


@pytest.fixture
def carol(db):
    return make_user("carol", roles=("Rubric owner",))


def config() -> dict:
    return copy.deepcopy(CONFIG)


def _with(mutate) -> dict:
    data = config()
    mutate(data)
    return data


def write(tmp_path: Path, data: dict | str, name: str = "evals.yaml") -> Path:
    path = tmp_path / name
    path.write_text(
        data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False), encoding="utf-8"
    )
    return path


def apply(path: Path, user, *args: str) -> str:
    out = StringIO()
    call_command("apply_config", str(path), "--as", user.username, *args, stdout=out)
    return out.getvalue()


def object_counts() -> dict[str, int]:
    return {
        "failure classes": FailureClass.objects.count(),
        "endpoints": Endpoint.objects.count(),
        "rubrics": Rubric.objects.count(),
        "versions": RubricVersion.objects.count(),
        "events": RubricVersionEvent.objects.count(),
        "graders": Grader.objects.count(),
    }


def history_counts() -> dict[str, int]:
    return {
        model.__name__: model.history.count() for model in (FailureClass, Endpoint, Rubric, Grader, Dataset)
    }


NOTHING = {"failure classes": 0, "endpoints": 0, "rubrics": 0, "versions": 0, "events": 0, "graders": 0}


def events(version: RubricVersion) -> list[tuple[str, str, str]]:
    return [(e.from_state, e.to_state, e.actor.username) for e in version.events.select_related("actor")]


def test_apply_creates_endpoints_rubrics_with_signed_off_versions_and_graders(tmp_path, alice, bob):
    out = apply(write(tmp_path, CONFIG), bob)

    for line in (
        "create    endpoint local",
        "create    rubric helpfulness",
        "create    rubric helpfulness v1",
        "approve   rubric helpfulness v1",
        "create    grader answer-exact",
        "create    grader refusal",
        "create    grader helpful",
    ):
        assert line in out
    endpoint = Endpoint.objects.get(name="local")
    assert (
        endpoint.base_url,
        endpoint.api_key_env,
        endpoint.max_concurrency,
        endpoint.timeout_s,
        endpoint.price_in_per_mtok,
        endpoint.price_out_per_mtok,
    ) == ("http://127.0.0.1:9999/v1", "OPENAI_API_KEY", 16, 30.0, 0.15, 0.6)
    rubric = Rubric.objects.get(slug="helpfulness")
    assert (rubric.owner, rubric.name) == (bob, "helpfulness")
    version = RubricVersion.objects.get(rubric=rubric)
    assert (version.number, version.state, version.author, version.endpoint, version.model) == (
        1,
        RubricState.APPROVED,
        alice,
        endpoint,
        "judge-model",
    )
    assert version.criteria == VERSION_1["criteria"]
    assert events(version) == [
        ("", "draft", "alice"),
        ("draft", "submitted", "alice"),
        ("submitted", "approved", "bob"),
    ]
    exact = Grader.objects.get(slug="answer-exact")
    assert (exact.kind, exact.dimension, exact.rubric) == ("exact_match", "correctness", None)
    assert exact.config == {"expected_field": "answer", "normalize": True, "case_sensitive": False}
    assert [fc.slug for fc in exact.failure_classes.all()] == ["factual"]
    assert list(Grader.objects.get(slug="refusal").failure_classes.all()) == []
    helpful = Grader.objects.get(slug="helpful")
    assert (helpful.kind, helpful.rubric) == ("llm_judge", rubric)
    assert rubric_version_for(helpful) == version
    for model in (Endpoint, Rubric, Grader):
        assert {h.history_user for h in model.history.all()} == {bob}


def test_the_design_documents_grading_sections_apply(tmp_path, alice, bob):
    text = """
failure_classes:
  - {slug: factual, name: Factual correctness, description: "..."}
endpoints:
  - {name: local, base_url: "http://127.0.0.1:9999/v1", api_key_env: OPENAI_API_KEY,
     max_concurrency: 16, timeout_s: 30, price_in_per_mtok: 0.15, price_out_per_mtok: 0.6}
rubrics:
  - slug: helpfulness
    owner: bob
    versions:                   # listed oldest first; existing versions are never rewritten
      - {criteria: "...", scale: binary, pass_threshold: 1, endpoint: local,
         model: judge-model, author: alice, approved_by: bob}
graders:
  - {slug: answer-exact, kind: exact_match, dimension: correctness,
     config: {expected_field: answer, normalize: true}, failure_classes: [factual]}
  - {slug: refusal, kind: refusal, dimension: safety}
  - {slug: helpful, kind: llm_judge, dimension: correctness, rubric: helpfulness}
"""
    apply(write(tmp_path, text), bob)

    assert set(Grader.objects.values_list("slug", flat=True)) == {"answer-exact", "refusal", "helpful"}
    assert RubricVersion.objects.get(rubric__slug="helpfulness").state == RubricState.APPROVED


def test_a_json_config_file_applies_too(tmp_path, alice, bob):
    import json

    apply(write(tmp_path, json.dumps(CONFIG), name="evals.json"), bob)

    assert Grader.objects.count() == 3
    assert RubricVersion.objects.get(rubric__slug="helpfulness").state == RubricState.APPROVED


def test_reapplying_the_same_file_changes_nothing(tmp_path, alice, bob):
    path = write(tmp_path, CONFIG)
    apply(path, bob)
    before = (object_counts(), history_counts())
    stamps = (
        list(Endpoint.objects.values_list("name", "updated_at")),
        list(Rubric.objects.values_list("slug", "updated_at")),
        list(Grader.objects.values_list("slug", "updated_at")),
    )

    out = apply(path, bob)

    assert (object_counts(), history_counts()) == before
    assert (
        list(Endpoint.objects.values_list("name", "updated_at")),
        list(Rubric.objects.values_list("slug", "updated_at")),
        list(Grader.objects.values_list("slug", "updated_at")),
    ) == stamps
    assert "changed 0 object group(s)" in out
    plan = out.splitlines()[:-1]
    assert "unchanged rubric helpfulness v1" in plan
    assert plan and all(line.startswith("unchanged") for line in plan)


def test_a_changed_grader_config_updates_it_with_history_by_the_applying_user(tmp_path, alice, bob, carol):
    apply(write(tmp_path, CONFIG), bob)
    changed = config()
    del changed["rubrics"][0]["versions"][0]["approved_by"]  # signed off already; carol only applies
    changed["graders"][0]["config"] = {"expected_field": "answer", "normalize": False}
    changed["graders"][0]["failure_classes"] = []
    changed["endpoints"][0]["timeout_s"] = 12.5
    before = history_counts()

    out = apply(write(tmp_path, changed), carol)

    assert "update    grader answer-exact" in out
    assert "update    endpoint local" in out
    assert "unchanged grader refusal" in out
    assert "unchanged rubric helpfulness v1" in out
    grader = Grader.objects.get(slug="answer-exact")
    assert grader.config == {"expected_field": "answer", "normalize": False, "case_sensitive": False}
    assert list(grader.failure_classes.all()) == []
    assert Endpoint.objects.get(name="local").timeout_s == 12.5
    after = history_counts()
    assert after["Rubric"] == before["Rubric"]
    # The config and the failure classes each leave a row (simple-history records m2m changes).
    new_grader_rows = Grader.history.order_by("-history_id")[: after["Grader"] - before["Grader"]]
    assert {(h.slug, h.history_type, h.history_user) for h in new_grader_rows} == {
        ("answer-exact", "~", carol)
    }
    new_endpoint_rows = Endpoint.history.order_by("-history_id")[: after["Endpoint"] - before["Endpoint"]]
    assert [(h.name, h.history_type, h.history_user) for h in new_endpoint_rows] == [("local", "~", carol)]
    assert RubricVersion.objects.get().state == RubricState.APPROVED


def test_a_new_rubric_version_appended_to_the_list_becomes_v2(tmp_path, alice, bob, carol):
    apply(write(tmp_path, CONFIG), bob)
    v1 = RubricVersion.objects.get(number=1)
    v1_events = events(v1)
    data = config()
    data["rubrics"][0]["versions"].append(
        {**VERSION_1, "criteria": "Correct, grounded and kind.", "author": "carol"}
    )

    out = apply(write(tmp_path, data), bob)

    assert "unchanged rubric helpfulness v1" in out
    assert "create    rubric helpfulness v2" in out
    assert "approve   rubric helpfulness v2" in out
    versions = {v.number: v for v in RubricVersion.objects.filter(rubric__slug="helpfulness")}
    assert set(versions) == {1, 2}
    assert (versions[1].criteria, versions[1].state, events(versions[1])) == (
        VERSION_1["criteria"],
        RubricState.APPROVED,
        v1_events,
    )
    assert (versions[2].criteria, versions[2].author, versions[2].state) == (
        "Correct, grounded and kind.",
        carol,
        RubricState.APPROVED,
    )
    assert events(versions[2])[-1] == ("submitted", "approved", "bob")
    assert rubric_version_for(Grader.objects.get(slug="helpful")) == versions[2]


def test_a_new_version_without_sign_off_stays_a_draft_and_judges_keep_the_approved_one(tmp_path, alice, bob):
    apply(write(tmp_path, CONFIG), bob)
    data = config()
    data["rubrics"][0]["versions"].append({**VERSION_1, "criteria": "Stricter wording."})
    del data["rubrics"][0]["versions"][1]["approved_by"]

    out = apply(write(tmp_path, data), bob)

    assert "create    rubric helpfulness v2" in out
    assert "approve   rubric helpfulness v2" not in out
    v2 = RubricVersion.objects.get(number=2)
    assert (v2.state, events(v2)) == (RubricState.DRAFT, [("", "draft", "alice")])
    assert rubric_version_for(Grader.objects.get(slug="helpful")).number == 1


def test_signing_off_a_version_later_submits_and_approves_the_existing_draft(tmp_path, alice, bob):
    unsigned = config()
    del unsigned["rubrics"][0]["versions"][0]["approved_by"]
    apply(write(tmp_path, unsigned), bob)
    assert RubricVersion.objects.get().state == RubricState.DRAFT

    out = apply(write(tmp_path, CONFIG), bob)

    assert "approve   rubric helpfulness v1" in out
    version = RubricVersion.objects.get()
    assert RubricVersion.objects.count() == 1
    assert version.state == RubricState.APPROVED
    assert events(version) == [
        ("", "draft", "alice"),
        ("draft", "submitted", "alice"),
        ("submitted", "approved", "bob"),
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("criteria", "A quietly different wording."),
        ("model", "another-judge"),
        ("pass_threshold", 0.5),
    ],
)
def test_rewriting_an_existing_version_fails_naming_it_and_writes_nothing(tmp_path, alice, bob, field, value):
    apply(write(tmp_path, CONFIG), bob)
    before = (object_counts(), history_counts())
    data = config()
    data["rubrics"][0]["versions"][0][field] = value
    # Valid changes to every other section, none of which may be written either.
    data["failure_classes"][0]["name"] = "Renamed"
    data["failure_classes"].append({"slug": "safety", "name": "Safety"})
    data["endpoints"][0]["timeout_s"] = 5
    data["graders"][0]["config"] = {"normalize": False}
    data["graders"].append({"slug": "shape", "kind": "json_valid"})

    with pytest.raises(CommandError) as failed:
        apply(write(tmp_path, data), bob)

    message = str(failed.value)
    assert "nothing applied" in message
    assert "rubric helpfulness v1" in message
    assert "never rewritten" in message
    assert (object_counts(), history_counts()) == before
    version = RubricVersion.objects.get()
    assert getattr(version, field) == VERSION_1[field]
    assert FailureClass.objects.get().name == "Factual correctness"
    assert Endpoint.objects.get().timeout_s == 30
    assert Grader.objects.get(slug="answer-exact").config["normalize"] is True


# Sign-off in a config: the rubric owner, not the author, and the user applying it.


def _second_rubric(approved_by: str, author: str = "alice"):
    """A second rubric whose second version carries the sign-off under test."""

    def mutate(data: dict) -> None:
        data["rubrics"].append(
            {
                "slug": "tone",
                "owner": "bob",
                "versions": [
                    {**VERSION_1, "criteria": "Polite."},
                    {
                        **VERSION_1,
                        "criteria": "Polite and brief.",
                        "author": author,
                        "approved_by": approved_by,
                    },
                ],
            }
        )

    return mutate


@pytest.mark.parametrize(
    ("mutate", "applier", "problem"),
    [
        (
            _second_rubric("carol"),
            "carol",
            "rubrics[1].versions[1].approved_by: only an owner of the rubric (owner or co_owners) approves",
        ),
        (
            _second_rubric("bob", author="bob"),
            "bob",
            "rubrics[1].versions[1].approved_by: the author cannot approve their own version",
        ),
        (
            _second_rubric("bob"),
            "carol",
            "rubrics[1].versions[1].approved_by: must be the user applying the config",
        ),
        (_second_rubric("nobody"), "bob", "rubrics[1].versions[1].approved_by: no user named 'nobody'"),
    ],
    ids=["not the owner", "the author", "not the applying user", "no such user"],
)
def test_a_sign_off_breaking_the_rules_is_an_error_naming_the_version_and_writes_nothing(
    tmp_path, alice, bob, carol, mutate, applier, problem
):
    users = {"bob": bob, "carol": carol}

    with pytest.raises(CommandError) as failed:
        apply(write(tmp_path, _with(mutate)), users[applier])

    assert "nothing applied" in str(failed.value)
    assert problem in str(failed.value)
    assert object_counts() == NOTHING


def test_the_owner_cannot_sign_off_through_a_config_someone_else_applies(tmp_path, alice, bob, carol):
    with pytest.raises(CommandError, match=r"rubrics\[0\]\.versions\[0\]\.approved_by"):
        apply(write(tmp_path, CONFIG), carol)

    assert object_counts() == NOTHING


# Errors: each names its path, and nothing at all is written.


def _set(section: str, index: int, **fields):
    return lambda data: data[section][index].update(fields)


def _set_version(**fields):
    return lambda data: data["rubrics"][0]["versions"][0].update(fields)


BAD_CONFIGS = {
    "unknown kind": (_set("graders", 0, kind="nope"), "graders[0].kind: Unknown grader kind 'nope'"),
    "unknown config key": (
        _set("graders", 0, config={"colour": "red"}),
        "graders[0].config: Unknown key(s) for exact_match: colour",
    ),
    "config value of the wrong type": (
        _set("graders", 0, config={"normalize": "yes"}),
        "graders[0].config: exact_match: config.normalize has the wrong type",
    ),
    "config not an object": (_set("graders", 0, config=["normalize"]), "graders[0].config:"),
    "unknown failure class": (
        _set("graders", 0, failure_classes=["factual", "nope"]),
        "graders[0].failure_classes[1]: unknown failure class 'nope'",
    ),
    "unknown rubric": (_set("graders", 2, rubric="nope"), "graders[2].rubric: unknown rubric 'nope'"),
    "judge without a rubric": (
        lambda d: d["graders"][2].pop("rubric"),
        "graders[2].rubric: a llm_judge grader needs a rubric",
    ),
    "unknown dimension": (_set("graders", 1, dimension="vibes"), "graders[1].dimension: must be one of"),
    "unknown grader key": (_set("graders", 1, colour="red"), "graders[1].colour: unknown key"),
    "missing grader kind": (lambda d: d["graders"][1].pop("kind"), "graders[1].kind: is required"),
    "unknown endpoint": (
        _set_version(endpoint="nope"),
        "rubrics[0].versions[0].endpoint: unknown endpoint 'nope'",
    ),
    "missing base_url": (lambda d: d["endpoints"][0].pop("base_url"), "endpoints[0].base_url: is required"),
    "endpoint field of the wrong type": (
        _set("endpoints", 0, max_concurrency="many"),
        "endpoints[0].max_concurrency: has the wrong type",
    ),
    "unknown endpoint key": (_set("endpoints", 0, colour="red"), "endpoints[0].colour: unknown key"),
    "unknown rubric owner": (_set("rubrics", 0, owner="nobody"), "rubrics[0].owner: no user named 'nobody'"),
    "unknown author": (
        _set_version(author="nobody"),
        "rubrics[0].versions[0].author: no user named 'nobody'",
    ),
    "unknown scale": (_set_version(scale="stars"), "rubrics[0].versions[0].scale: must be one of"),
    "missing model": (lambda d: d["rubrics"][0]["versions"][0].pop("model"), "rubrics[0].versions[0].model"),
    "unknown version key": (_set_version(colour="red"), "rubrics[0].versions[0].colour: unknown key"),
    "graders not a list": (lambda d: d.update(graders={"slug": "x"}), "graders: must be a list"),
}


@pytest.mark.parametrize(("mutate", "problem"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_each_invalid_grading_config_is_an_error_naming_its_path_and_writes_nothing(
    tmp_path, alice, bob, mutate, problem
):
    with pytest.raises(CommandError) as failed:
        apply(write(tmp_path, _with(mutate)), bob)

    assert "nothing applied" in str(failed.value)
    assert problem in str(failed.value)
    assert object_counts() == NOTHING
    assert set(history_counts().values()) == {0}


def _rename_endpoint(data: dict) -> None:
    data["endpoints"][0]["name"] = "local endpoint"
    data["rubrics"][0]["versions"][0]["endpoint"] = "local endpoint"


def _rename_rubric(data: dict) -> None:
    data["rubrics"][0]["slug"] = "help fulness"
    data["graders"][2]["rubric"] = "help fulness"


INVALID_VALUES = {
    "endpoint name not a slug": (_rename_endpoint, "endpoints[0].name"),
    "base_url not a URL": (_set("endpoints", 0, base_url="not a url"), "endpoints[0].base_url"),
    "no concurrency": (_set("endpoints", 0, max_concurrency=0), "endpoints[0].max_concurrency"),
    "rubric slug not a slug": (_rename_rubric, "rubrics[0].slug"),
    "pass_threshold not a number": (
        _set_version(pass_threshold="high"),
        "rubrics[0].versions[0].pass_threshold",
    ),
    "pass_threshold above 1": (_set_version(pass_threshold=5), "rubrics[0].versions[0].pass_threshold"),
    "grader slug not a slug": (_set("graders", 1, slug="refusal check"), "graders[1].slug"),
}


@pytest.mark.parametrize(("mutate", "path"), INVALID_VALUES.values(), ids=INVALID_VALUES.keys())
def test_an_invalid_value_is_an_error_naming_its_path_and_writes_nothing(tmp_path, alice, bob, mutate, path):
    with pytest.raises(CommandError) as failed:
        apply(write(tmp_path, _with(mutate)), bob)

    assert f"{path}:" in str(failed.value)
    assert object_counts() == NOTHING


def test_references_to_objects_already_in_the_database_are_accepted(tmp_path, alice, bob):
    apply(write(tmp_path, CONFIG), bob)
    make_failure_class("safety")
    data = {"graders": [{"slug": "judge-2", "kind": "llm_judge", "rubric": "helpfulness"}]}
    data["graders"].append({"slug": "refusal-2", "kind": "refusal", "failure_classes": ["safety"]})
    data["rubrics"] = [{"slug": "tone", "owner": "bob", "versions": [{**VERSION_1, "criteria": "Polite."}]}]

    apply(write(tmp_path, data), bob)

    assert Grader.objects.get(slug="judge-2").rubric.slug == "helpfulness"
    assert [fc.slug for fc in Grader.objects.get(slug="refusal-2").failure_classes.all()] == ["safety"]
    assert RubricVersion.objects.get(rubric__slug="tone").endpoint.name == "local"


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, alice, bob):
    out = apply(write(tmp_path, CONFIG), bob, "--dry-run")

    for line in (
        "create    endpoint local",
        "create    rubric helpfulness",
        "create    rubric helpfulness v1",
        "approve   rubric helpfulness v1",
        "create    grader answer-exact",
        "create    grader helpful",
    ):
        assert line in out
    assert "Dry run: would change" in out
    assert object_counts() == NOTHING
    assert set(history_counts().values()) == {0}


def test_dry_run_of_a_changed_file_lists_the_changes_and_writes_nothing(tmp_path, alice, bob, carol):
    apply(write(tmp_path, CONFIG), bob)
    before = (object_counts(), history_counts())
    data = config()
    data["graders"][1]["dimension"] = "abstention"
    data["rubrics"][0]["versions"].append({**VERSION_1, "criteria": "New wording.", "author": "carol"})

    out = apply(write(tmp_path, data), bob, "--dry-run")

    assert "update    grader refusal" in out
    assert "unchanged grader answer-exact" in out
    assert "create    rubric helpfulness v2" in out
    assert "approve   rubric helpfulness v2" in out
    assert "Dry run: would change 3 object group(s)." in out
    assert (object_counts(), history_counts()) == before
    assert Grader.objects.get(slug="refusal").dimension == "safety"
