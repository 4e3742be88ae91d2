"""The gate rules an import plan needs (promptfoo's latency and cost assertions), checked and
written for the import service through datasets_app.extensions: added to the gate the
importer names (or the dataset's only gate), by one of that gate's owners."""

from typing import Any

from django.core.exceptions import PermissionDenied

from datasets_app.importers import ImportPlan, LineError
from gates_app import services
from gates_app.models import Gate, GateRule


def _problem(message: str) -> LineError:
    return LineError(0, "rules", message, unit="")


def _gate(plan: ImportPlan, settings: Any, dataset: Any) -> tuple[Gate | None, str]:
    """The gate that receives the plan's rules, or why there is none."""
    if settings.gate:
        gate = Gate.objects.filter(slug=settings.gate).first()
        if gate is None:
            return None, f"no gate named {settings.gate!r}"
        if gate.dataset_id != dataset.pk:
            return None, f"gate {gate.slug!r} gates another dataset"
        return gate, ""
    gates = list(Gate.objects.filter(dataset=dataset)[:2])
    names = ", ".join(rule.name for rule in plan.rules)
    if len(gates) != 1:
        return None, f"the file's {names} become gate rules: name the gate that gets them with --gate"
    return gates[0], ""


def check_plan(plan: ImportPlan, settings: Any, actor: Any, dataset: Any) -> list[LineError]:
    if not plan.rules:
        return []
    problems = []
    gate, why = _gate(plan, settings, dataset)
    if gate is None:
        problems.append(_problem(why))
    elif actor is not None and not gate.is_owner(actor) and not actor.is_superuser:
        problems.append(
            _problem(
                f"only an owner of gate {gate.slug!r} adds its rules "
                f"({', '.join(r.name for r in plan.rules)})"
            )
        )
    return problems


def apply_plan(plan: ImportPlan, settings: Any, actor: Any, dataset: Any) -> list[str]:
    if not plan.rules:
        return []
    gate, why = _gate(plan, settings, dataset)
    if gate is None:
        raise PermissionDenied(why)
    # A rule an earlier import added (same name) is not added twice.
    existing = set(GateRule.objects.filter(gate=gate).values_list("name", flat=True))
    new = [spec for spec in plan.rules if spec.name not in existing]
    rules = [
        {
            "name": spec.name,
            "metric": spec.metric,
            "threshold": spec.threshold,
            "scope": spec.scope,
            "severity": spec.severity,
        }
        for spec in new
    ]
    services.add_gate_rules(gate, rules, actor=actor)
    return [f"gate {gate.slug} rule {spec.name!r}" for spec in new]
