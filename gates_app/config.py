"""The gates section of the declarative config (DESIGN.md section 8), validated by path."""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser

from datasets_app.models import Dataset
from evalproject.config import ConfigErrors, Plan, as_list, check_keys
from gates_app import metrics
from gates_app.choices import DecideOn, Direction, RuleMode, RuleStage, Severity
from gates_app.models import SCOPE_KEYS, Gate, GateRule
from gates_app.services import save_gate
from grading_app.models import Grader, Target
from monitoring_app import windows
from monitoring_app.models import Source

GATE_KEYS = (
    "name",
    "description",
    "co_owners",
    "approvers",
    "required_approvals",
    "warnings_need_approval",
    "missing_tolerance",
    "rules",
    "default_target",
    "webhook_url",
    "sources",
    "production_window_hours",
    "production_min_traces",
)
RULE_KEYS = (
    "stage",
    "grader",
    "scope",
    "mode",
    "threshold",
    "direction",
    "margin",
    "strict",
    "decide_on",
    "severity",
    "min_kappa",
    "min_labels",
)
CHOICES = {
    "mode": RuleMode.values,
    "direction": Direction.values,
    "decide_on": DecideOn.values,
    "severity": Severity.values,
    "stage": RuleStage.values,
}


def validate(
    raw: Any,
    errors: ConfigErrors,
    *,
    datasets: set[str],
    graders: set[str],
    targets: set[str],
    sources: set[str] = frozenset(),
) -> list[dict[str, Any]]:
    users = set(get_user_model().objects.values_list("username", flat=True))
    datasets |= set(Dataset.objects.values_list("slug", flat=True))
    graders |= set(Grader.objects.values_list("slug", flat=True))
    targets |= set(Target.objects.values_list("slug", flat=True))
    specs = []
    for i, gate in enumerate(as_list(raw, "gates", errors)):
        path = f"gates[{i}]"
        if not check_keys(gate, path, errors, required=("slug", "owner", "dataset"), optional=GATE_KEYS):
            continue
        if gate["owner"] not in users:
            errors.add(f"{path}.owner", f"no user named {gate['owner']!r}")
        for key in ("approvers", "co_owners"):
            for j, name in enumerate(as_list(gate.get(key), f"{path}.{key}", errors)):
                if name not in users:
                    errors.add(f"{path}.{key}[{j}]", f"no user named {name!r}")
        required = gate.get("required_approvals", 1)
        if isinstance(required, bool) or not isinstance(required, int) or required < 1:
            errors.add(f"{path}.required_approvals", "must be a whole number, at least 1")
        if gate["dataset"] not in datasets:
            errors.add(f"{path}.dataset", f"unknown dataset {gate['dataset']!r}")
        if gate.get("default_target") and gate["default_target"] not in targets:
            errors.add(f"{path}.default_target", f"unknown target {gate['default_target']!r}")
        tolerance = gate.get("missing_tolerance", 0)
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not 0 <= tolerance <= 1:
            errors.add(f"{path}.missing_tolerance", "must be a share between 0 and 1")
        if not isinstance(gate.get("warnings_need_approval", True), bool):
            errors.add(f"{path}.warnings_need_approval", "must be true or false")
        known_sources = set(sources) | set(Source.objects.values_list("slug", flat=True))
        for j, name in enumerate(as_list(gate.get("sources"), f"{path}.sources", errors)):
            if name not in known_sources:
                errors.add(f"{path}.sources[{j}]", f"unknown trace source {name!r}")
        for key in ("production_window_hours", "production_min_traces"):
            value = gate.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                errors.add(f"{path}.{key}", "must be a whole number, at least 1")
        names = set()
        for j, rule in enumerate(as_list(gate.get("rules"), f"{path}.rules", errors)):
            _validate_rule(rule, f"{path}.rules[{j}]", errors, graders=graders, names=names)
        specs.append(gate)
    return specs


def _validate_rule(rule: Any, path: str, errors: ConfigErrors, *, graders: set[str], names: set[str]) -> None:
    if not check_keys(rule, path, errors, required=("name", "metric"), optional=RULE_KEYS):
        return
    if rule["name"] in names:
        errors.add(f"{path}.name", f"duplicate rule name {rule['name']!r}")
    names.add(rule["name"])
    if rule.get("stage") == RuleStage.PRODUCTION:
        _validate_production_rule(rule, path, errors, graders=graders)
        return
    try:
        spec = metrics.get_metric(rule["metric"])
    except KeyError as exc:
        errors.add(f"{path}.metric", exc.args[0])
        return
    if spec.needs_grader and not rule.get("grader"):
        errors.add(f"{path}.grader", f"metric {rule['metric']} needs a grader")
    if rule.get("grader") and rule["grader"] not in graders:
        errors.add(f"{path}.grader", f"unknown grader {rule['grader']!r}")
    for key, allowed in CHOICES.items():
        if key in rule and rule[key] not in allowed:
            errors.add(f"{path}.{key}", f"must be one of {', '.join(allowed)}")
    mode = rule.get("mode", RuleMode.ABSOLUTE)
    if mode == RuleMode.ABSOLUTE and spec.needs_threshold and rule.get("threshold") is None:
        errors.add(f"{path}.threshold", "an absolute rule needs a threshold")
    for key in ("threshold", "margin"):
        value = rule.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            errors.add(f"{path}.{key}", "must be a number")
    if not isinstance(rule.get("strict", False), bool):
        errors.add(f"{path}.strict", "must be true or false")
    kappa = rule.get("min_kappa")
    if kappa is not None and (
        isinstance(kappa, bool) or not isinstance(kappa, int | float) or not -1 <= kappa <= 1
    ):
        errors.add(f"{path}.min_kappa", "must be a number from -1 to 1")
    labels = rule.get("min_labels")
    if labels is not None and (isinstance(labels, bool) or not isinstance(labels, int) or labels < 0):
        errors.add(f"{path}.min_labels", "must be a whole number, at least 0")
    scope = rule.get("scope", {})
    if not isinstance(scope, dict) or set(scope) - set(SCOPE_KEYS):
        errors.add(f"{path}.scope", f"a mapping with keys among {', '.join(SCOPE_KEYS)}")


def _validate_production_rule(
    rule: dict[str, Any], path: str, errors: ConfigErrors, *, graders: set[str]
) -> None:
    """A production rule: a metric of live traffic (monitoring_app.windows), no scope or pairing."""
    spec = windows.METRICS.get(rule["metric"])
    if spec is None:
        errors.add(
            f"{path}.metric",
            f"unknown production metric {rule['metric']!r} (known: {', '.join(sorted(windows.METRICS))})",
        )
        return
    if spec.needs_grader and not rule.get("grader"):
        errors.add(f"{path}.grader", f"metric {rule['metric']} needs a grader")
    if rule.get("grader") and rule["grader"] not in graders:
        errors.add(f"{path}.grader", f"unknown grader {rule['grader']!r}")
    for key, allowed in CHOICES.items():
        if key in rule and rule[key] not in allowed:
            errors.add(f"{path}.{key}", f"must be one of {', '.join(allowed)}")
    if rule.get("mode", RuleMode.ABSOLUTE) == RuleMode.ABSOLUTE and rule.get("threshold") is None:
        errors.add(f"{path}.threshold", "an absolute rule needs a threshold")
    for key in ("threshold", "margin"):
        value = rule.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            errors.add(f"{path}.{key}", "must be a number")
    for key in ("scope", "strict", "min_kappa", "min_labels"):
        if key in rule:
            errors.add(f"{path}.{key}", "does not apply to a production rule")


def _rule_fields(rule: dict[str, Any], graders: dict[str, Grader]) -> dict[str, Any]:
    return {
        "stage": rule.get("stage", RuleStage.RELEASE),
        "name": rule["name"],
        "metric": rule["metric"],
        "grader": graders.get(rule.get("grader", "")),
        "scope": rule.get("scope", {}),
        "mode": rule.get("mode", RuleMode.ABSOLUTE),
        "threshold": rule.get("threshold"),
        "direction": rule.get("direction", ""),
        "margin": float(rule.get("margin", 0.0)),
        "strict": bool(rule.get("strict", False)),
        "decide_on": rule.get("decide_on", DecideOn.POINT),
        "severity": rule.get("severity", Severity.BLOCK),
        "min_kappa": rule.get("min_kappa"),
        "min_labels": rule.get("min_labels"),
    }


def apply(specs: list[dict[str, Any]], *, actor: AbstractBaseUser, plan: Plan) -> None:
    users = {u.get_username(): u for u in get_user_model().objects.all()}
    graders = {g.slug: g for g in Grader.objects.all()}
    for spec in specs:
        rules = [_rule_fields(rule, graders) for rule in spec.get("rules") or []]
        fields = {
            "name": spec.get("name", spec["slug"]),
            "description": spec.get("description", ""),
            "owner": users[spec["owner"]],
            "dataset": Dataset.objects.get(slug=spec["dataset"]),
            "approvers": sorted((users[a] for a in spec.get("approvers") or []), key=lambda u: u.pk),
            "co_owners": sorted((users[a] for a in spec.get("co_owners") or []), key=lambda u: u.pk),
            "required_approvals": int(spec.get("required_approvals", 1)),
            "warnings_need_approval": bool(spec.get("warnings_need_approval", True)),
            "missing_tolerance": float(spec.get("missing_tolerance", 0.0)),
            "default_target": Target.objects.filter(slug=spec.get("default_target") or "").first(),
            "webhook_url": spec.get("webhook_url", ""),
            "sources": sorted(Source.objects.filter(slug__in=spec.get("sources") or []), key=lambda x: x.pk),
            "production_window_hours": int(spec.get("production_window_hours", 24)),
            "production_min_traces": int(spec.get("production_min_traces", 200)),
        }
        gate = Gate.objects.filter(slug=spec["slug"]).first()
        if gate is not None and _unchanged(gate, fields, rules):
            plan.note("unchanged", f"gate {spec['slug']}")
            continue
        save_gate(slug=spec["slug"], rules=rules, actor=actor, **fields)
        plan.note("update" if gate else "create", f"gate {spec['slug']} ({len(rules)} rules)")


def _unchanged(gate: Gate, fields: dict[str, Any], rules: list[dict[str, Any]]) -> bool:
    simple = {k: v for k, v in fields.items() if k not in ("approvers", "co_owners", "sources")}
    if any(getattr(gate, key) != value for key, value in simple.items()):
        return False
    for key in ("approvers", "co_owners", "sources"):
        if sorted(getattr(gate, key).values_list("pk", flat=True)) != [u.pk for u in fields[key]]:
            return False
    current = list(GateRule.objects.filter(gate=gate).order_by("position", "pk"))
    return len(current) == len(rules) and all(
        all(getattr(existing, key) == value for key, value in wanted.items())
        for existing, wanted in zip(current, rules, strict=True)
    )
