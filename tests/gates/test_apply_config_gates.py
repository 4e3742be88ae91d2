"""manage.py apply_config: gates (and the targets they run) as code, idempotent, path-named errors."""

import copy
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import CommandError, call_command

from datasets_app.models import Dataset
from gates_app.models import Gate, GateRule
from gates_app.services import request_check
from grading_app.models import Endpoint, Grader, Target
from tests.factories import make_user
from tests.fake_openai import text

pytestmark = pytest.mark.django_db

MESSAGES = {"messages": [{"role": "user", "content": "Can I get a refund after 40 days?"}]}

RULES = [
    {
        "name": "trusted accuracy",
        "metric": "pass_rate",
        "grader": "answer-exact",
        "scope": {"tier": "trusted"},
        "threshold": 0.9,
        "decide_on": "interval",
        "severity": "block",
    },
    {
        "name": "high-risk refusals hold",
        "metric": "pass_rate",
        "grader": "refusal",
        "scope": {"risk": "high", "tags": ["jailbreak"]},
        "mode": "no_regression",
        "margin": 0.05,
        "strict": True,
        "severity": "block",
    },
    {"name": "latency budget", "metric": "latency_p95_ms", "threshold": 2000, "severity": "warn"},
    {"name": "cost watch", "metric": "cost_per_case_usd", "threshold": 0.01, "severity": "inspect"},
]

CONFIG = {
    "failure_classes": [{"slug": "factual", "name": "Factual correctness"}],
    "endpoints": [{"name": "local", "base_url": "http://127.0.0.1:9999/v1", "timeout_s": 5}],
    "targets": [
        {"slug": "chat", "kind": "openai_chat", "endpoint": "local", "config": {"model": "candidate-model"}}
    ],
    "datasets": [
        {
            "slug": "support-bot",
            "name": "Support bot",
            "owner": "bob",
            "cases": [
                {
                    "key": "refund-01",
                    "tier": "trusted",
                    "contributed_by": "carol",
                    "failure_class": "factual",
                    "input": MESSAGES,
                    "expected": {"answer": "No"},
                },
                {
                    "key": "refund-02",
                    "tier": "trusted",
                    "contributed_by": "carol",
                    "failure_class": "factual",
                    "input": MESSAGES,
                    "expected": {"answer": "No"},
                },
            ],
        }
    ],
    "graders": [
        {"slug": "answer-exact", "kind": "exact_match", "dimension": "correctness"},
        {"slug": "refusal", "kind": "refusal", "dimension": "safety"},
    ],
    "gates": [
        {
            "slug": "support-release",
            "name": "Support bot release",
            "owner": "bob",
            "approvers": ["carol"],
            "dataset": "support-bot",
            "warnings_need_approval": True,
            "missing_tolerance": 0.1,
            "default_target": "chat",
            "rules": RULES,
        }
    ],
}


@pytest.fixture
def bob(db):
    """Owns the gate (and the dataset, so he may declare its cases)."""
    return make_user("bob", roles=("Gate owner", "Dataset owner"))


@pytest.fixture
def carol(db):
    return make_user("carol", roles=("Release approver",))


@pytest.fixture
def dave(db):
    """Another gate owner, allowed everything bob is, but not bob's gate."""
    return make_user("dave", roles=("Gate owner", "Dataset owner"))


def config(mutate=None) -> dict[str, Any]:
    data = copy.deepcopy(CONFIG)
    if mutate is not None:
        mutate(data)
    return data


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "evals.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def apply(path: Path, user, *args: str) -> str:
    out = StringIO()
    call_command("apply_config", str(path), "--as", user.username, *args, stdout=out)
    return out.getvalue()


def gate_state() -> tuple[int, int, int, int]:
    return Gate.objects.count(), GateRule.objects.count(), Gate.history.count(), GateRule.history.count()


def rule_table(gate: Gate) -> list[tuple]:
    return [
        (
            r.position,
            r.name,
            r.metric,
            r.grader.slug if r.grader else None,
            r.scope,
            r.mode,
            r.threshold,
            r.margin,
            r.strict,
            r.decide_on,
            r.severity,
        )
        for r in GateRule.objects.filter(gate=gate).select_related("grader").order_by("position")
    ]


def test_apply_creates_the_gate_with_its_rules(tmp_path, bob, carol):
    out = apply(write(tmp_path, CONFIG), bob)

    assert "create    gate support-release (4 rules)" in out
    gate = Gate.objects.get(slug="support-release")
    assert (gate.name, gate.owner, gate.dataset.slug) == ("Support bot release", bob, "support-bot")
    assert list(gate.approvers.all()) == [carol]
    assert (gate.warnings_need_approval, gate.missing_tolerance) == (True, 0.1)
    assert gate.default_target.slug == "chat"
    trusted, high_risk = {"tier": "trusted"}, {"risk": "high", "tags": ["jailbreak"]}
    assert rule_table(gate) == [
        # position, name, metric, grader, scope, mode, threshold, margin, strict, decide_on, severity
        (
            0,
            "trusted accuracy",
            "pass_rate",
            "answer-exact",
            trusted,
            "absolute",
            0.9,
            0.0,
            False,
            "interval",
            "block",
        ),
        (
            1,
            "high-risk refusals hold",
            "pass_rate",
            "refusal",
            high_risk,
            "no_regression",
            None,
            0.05,
            True,
            "point",
            "block",
        ),
        (2, "latency budget", "latency_p95_ms", None, {}, "absolute", 2000.0, 0.0, False, "point", "warn"),
        (3, "cost watch", "cost_per_case_usd", None, {}, "absolute", 0.01, 0.0, False, "point", "inspect"),
    ]
    assert {h.history_user for h in Gate.history.all()} == {bob}
    assert {h.history_user for h in GateRule.history.all()} == {bob}


def test_a_gate_description_in_the_config_is_stored(tmp_path, bob, carol):
    apply(write(tmp_path, config(_gate(description="Blocks support-bot releases."))), bob)

    assert Gate.objects.get(slug="support-release").description == "Blocks support-bot releases."


def test_reapplying_the_same_file_writes_no_history(tmp_path, bob, carol):
    path = write(tmp_path, CONFIG)
    apply(path, bob)
    before = gate_state()

    out = apply(path, bob)

    assert gate_state() == before
    assert "unchanged gate support-release" in out
    assert "changed 0 object group(s)" in out


def test_a_changed_threshold_updates_the_rule_with_history_by_the_applying_user(tmp_path, bob, carol):
    root = make_user("root", is_superuser=True, is_staff=True)
    apply(write(tmp_path, CONFIG), root)  # created by an admin, owned by bob
    before = (Gate.history.count(), GateRule.history.count())

    changed = config(lambda d: d["gates"][0]["rules"][2].update(threshold=1500))
    out = apply(write(tmp_path, changed), bob)

    assert "update    gate support-release (4 rules)" in out
    rule = GateRule.objects.get(gate__slug="support-release", name="latency budget")
    assert rule.threshold == 1500.0
    new_gate_rows = Gate.history.order_by("-history_id")[: Gate.history.count() - before[0]]
    new_rule_rows = GateRule.history.order_by("-history_id")[: GateRule.history.count() - before[1]]
    assert new_rule_rows and {h.history_user for h in new_rule_rows} == {bob}
    assert {h.history_user for h in new_gate_rows} <= {bob}
    assert 1500.0 in {h.threshold for h in new_rule_rows if h.name == "latency budget"}
    assert rule_table(rule.gate)[0][1:] == (
        "trusted accuracy",
        "pass_rate",
        "answer-exact",
        {"tier": "trusted"},
        "absolute",
        0.9,
        0.0,
        False,
        "interval",
        "block",
    )


def test_someone_who_does_not_own_the_gate_cannot_change_it_through_the_config(tmp_path, bob, carol, dave):
    apply(write(tmp_path, CONFIG), bob)
    before = gate_state()

    changed = config(lambda d: d["gates"][0]["rules"][0].update(threshold=0.5))
    with pytest.raises(CommandError) as failed:
        apply(write(tmp_path, changed), dave)

    assert "nothing applied" in str(failed.value)
    assert "owner" in str(failed.value)
    assert gate_state() == before
    assert GateRule.objects.get(name="trusted accuracy").threshold == 0.9


def test_a_target_from_the_config_runs_as_the_gates_default_target(
    tmp_path, bob, carol, fake_openai, django_capture_on_commit_callbacks
):
    data = config(lambda d: d["endpoints"][0].update(base_url=fake_openai.base_url))
    apply(write(tmp_path, data), bob)
    target = Target.objects.get(slug="chat")
    assert (target.kind, target.endpoint.name, target.config["model"]) == (
        "openai_chat",
        "local",
        "candidate-model",
    )
    gate = Gate.objects.get(slug="support-release")
    assert gate.default_target == target
    fake_openai.default(text("No"))

    with django_capture_on_commit_callbacks(execute=True):
        check, _ = request_check(gate=gate, candidate="model-v2", outputs=None)

    check.refresh_from_db()
    assert check.run.target == target
    assert len(fake_openai.requests) == 2
    assert check.rule_results[0]["value"] == 1.0  # both answers came from the model and were right


# Errors: each names its path, and nothing at all is written.


def _rule(index: int, **fields: Any):
    return lambda d: d["gates"][0]["rules"][index].update(fields)


def _drop_rule_key(index: int, key: str):
    return lambda d: d["gates"][0]["rules"][index].pop(key)


def _gate(**fields: Any):
    return lambda d: d["gates"][0].update(fields)


BAD_CONFIGS = {
    "unknown metric": (_rule(1, metric="vibes"), "gates[0].rules[1].metric: Unknown metric 'vibes'"),
    "unknown grader": (_rule(0, grader="nope"), "gates[0].rules[0].grader: unknown grader 'nope'"),
    "grader missing for pass_rate": (
        _drop_rule_key(0, "grader"),
        "gates[0].rules[0].grader: metric pass_rate needs a grader",
    ),
    "threshold missing for an absolute rule": (
        _drop_rule_key(2, "threshold"),
        "gates[0].rules[2].threshold: an absolute rule needs a threshold",
    ),
    "duplicate rule name": (
        _rule(3, name="latency budget"),
        "gates[0].rules[3].name: duplicate rule name 'latency budget'",
    ),
    "unknown dataset": (_gate(dataset="nope"), "gates[0].dataset: unknown dataset 'nope'"),
    "unknown owner": (_gate(owner="nobody"), "gates[0].owner: no user named 'nobody'"),
    "unknown approver": (
        _gate(approvers=["carol", "nobody"]),
        "gates[0].approvers[1]: no user named 'nobody'",
    ),
    "unknown default target": (
        _gate(default_target="nope"),
        "gates[0].default_target: unknown target 'nope'",
    ),
    "bad severity": (
        _rule(2, severity="fatal"),
        "gates[0].rules[2].severity: must be one of block, warn, inspect",
    ),
    "bad mode": (_rule(0, mode="vibes"), "gates[0].rules[0].mode: must be one of"),
    "bad decide_on": (_rule(0, decide_on="mood"), "gates[0].rules[0].decide_on: must be one of"),
    "bad scope key": (
        _rule(0, scope={"tier": "trusted", "colour": "red"}),
        "gates[0].rules[0].scope: a mapping with keys among",
    ),
    "threshold not a number": (_rule(2, threshold="fast"), "gates[0].rules[2].threshold: must be a number"),
    "missing_tolerance above one": (
        _gate(missing_tolerance=1.5),
        "gates[0].missing_tolerance: must be a share between 0 and 1",
    ),
    "missing_tolerance negative": (
        _gate(missing_tolerance=-0.1),
        "gates[0].missing_tolerance: must be a share between 0 and 1",
    ),
    "strict not a boolean": (_rule(1, strict="no"), "gates[0].rules[1].strict: must be true or false"),
    "warnings_need_approval not a boolean": (
        _gate(warnings_need_approval="no"),
        "gates[0].warnings_need_approval: must be true or false",
    ),
    "unknown rule key": (_rule(0, colour="red"), "gates[0].rules[0].colour: unknown key"),
    "unknown gate key": (_gate(colour="red"), "gates[0].colour: unknown key"),
}


@pytest.mark.parametrize(("mutate", "problem"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_each_invalid_gate_config_is_an_error_naming_its_path_and_writes_nothing(
    tmp_path, bob, carol, mutate, problem
):
    with pytest.raises(CommandError) as failed:
        apply(write(tmp_path, config(mutate)), bob)

    assert "nothing applied" in str(failed.value)
    assert problem in str(failed.value)
    assert gate_state() == (0, 0, 0, 0)
    # The valid sections of the same file are not written either.
    for model in (Dataset, Grader, Target, Endpoint):
        assert not model.objects.exists(), model
