"""The sources and monitors sections of the declarative config, validated by path, applied
through the services (so the owner rules hold for config as for the admin)."""

import datetime as dt
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser

from datasets_app.models import Dataset
from evalproject.config import ConfigErrors, Plan, as_list, check_fields, check_keys
from grading_app.models import Grader
from monitoring_app import redaction, services, windows
from monitoring_app.choices import Reference
from monitoring_app.models import AlertRule, Monitor, Source

SOURCE_KEYS = ("name", "description", "redaction", "retention_days")
MONITOR_KEYS = (
    "name", "description", "release", "metadata_filter", "sample_rate", "graders", "expected", "dataset",
    "judge_calls_per_hour", "window_minutes", "reference", "reference_start", "reference_end",
    "min_window_traces", "webhook_url", "active", "alert_rules",
)  # fmt: skip
RULE_KEYS = ("grader", "failure_class", "margin", "active")
MONITOR_FIELDS = (
    "name", "description", "release", "metadata_filter", "sample_rate", "expected", "judge_calls_per_hour",
    "window_minutes", "reference", "reference_start", "reference_end", "min_window_traces", "webhook_url",
    "active",
)  # fmt: skip
DEFAULTS = {field.name: field.get_default() for field in Monitor._meta.fields if field.name in MONITOR_FIELDS}


def validate_sources(raw: Any, errors: ConfigErrors) -> list[dict[str, Any]]:
    users = set(get_user_model().objects.values_list("username", flat=True))
    specs = []
    for i, spec in enumerate(as_list(raw, "sources", errors)):
        path = f"sources[{i}]"
        if not check_keys(spec, path, errors, required=("slug", "owner"), optional=SOURCE_KEYS):
            continue
        if spec["owner"] not in users:
            errors.add(f"{path}.owner", f"no user named {spec['owner']!r}")
        try:
            redaction.compile_rules(spec.get("redaction") or [])
        except ValueError as exc:
            errors.add(f"{path}.redaction", str(exc))
        days = spec.get("retention_days")
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
            errors.add(f"{path}.retention_days", "must be a whole number, at least 1")
        check_fields(
            Source(slug=spec["slug"], name=spec.get("name", spec["slug"])), path, errors, exclude=("owner",)
        )
        specs.append(spec)
    return specs


def validate_monitors(
    raw: Any, errors: ConfigErrors, *, sources: set[str], graders: set[str], datasets: set[str]
) -> list[dict[str, Any]]:
    users = set(get_user_model().objects.values_list("username", flat=True))
    sources |= set(Source.objects.values_list("slug", flat=True))
    graders |= set(Grader.objects.values_list("slug", flat=True))
    datasets |= set(Dataset.objects.values_list("slug", flat=True))
    specs = []
    for i, spec in enumerate(as_list(raw, "monitors", errors)):
        path = f"monitors[{i}]"
        if not check_keys(spec, path, errors, required=("slug", "owner", "source"), optional=MONITOR_KEYS):
            continue
        if spec["owner"] not in users:
            errors.add(f"{path}.owner", f"no user named {spec['owner']!r}")
        if spec["source"] not in sources:
            errors.add(f"{path}.source", f"unknown trace source {spec['source']!r}")
        if spec.get("dataset") and spec["dataset"] not in datasets:
            errors.add(f"{path}.dataset", f"unknown dataset {spec['dataset']!r}")
        for j, slug in enumerate(as_list(spec.get("graders"), f"{path}.graders", errors)):
            if slug not in graders:
                errors.add(f"{path}.graders[{j}]", f"unknown grader {slug!r}")
        rate = spec.get("sample_rate", 0.1)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            errors.add(f"{path}.sample_rate", "must be a share between 0 and 1")
        for key in ("judge_calls_per_hour", "window_minutes", "min_window_traces"):
            value = spec.get(key, 1)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (0 if key != "window_minutes" else 1)
            ):
                errors.add(
                    f"{path}.{key}",
                    "must be a whole number" + (", at least 1" if key == "window_minutes" else ""),
                )
        for key in ("metadata_filter", "expected"):
            if not isinstance(spec.get(key, {}), dict):
                errors.add(f"{path}.{key}", "must be a mapping")
        if spec.get("reference", Reference.PREVIOUS) not in Reference.values:
            errors.add(f"{path}.reference", f"must be one of {', '.join(Reference.values)}")
        for key in ("reference_start", "reference_end"):
            if spec.get(key) is not None and not isinstance(spec[key], dt.datetime):
                errors.add(f"{path}.{key}", "must be a timestamp with its zone (2026-12-01T08:00:00Z)")
        names: set[str] = set()
        for j, rule in enumerate(as_list(spec.get("alert_rules"), f"{path}.alert_rules", errors)):
            _validate_rule(rule, f"{path}.alert_rules[{j}]", errors, graders=graders, names=names)
        specs.append(spec)
    return specs


def _validate_rule(rule: Any, path: str, errors: ConfigErrors, *, graders: set[str], names: set[str]) -> None:
    if not check_keys(rule, path, errors, required=("name", "metric"), optional=RULE_KEYS):
        return
    if rule["name"] in names:
        errors.add(f"{path}.name", f"duplicate rule name {rule['name']!r}")
    names.add(rule["name"])
    spec = windows.METRICS.get(rule["metric"])
    if spec is None:
        errors.add(
            f"{path}.metric",
            f"unknown metric {rule['metric']!r} (known: {', '.join(sorted(windows.METRICS))})",
        )
    elif spec.needs_grader and not rule.get("grader"):
        errors.add(f"{path}.grader", f"metric {rule['metric']} needs a grader")
    if rule.get("grader") and rule["grader"] not in graders:
        errors.add(f"{path}.grader", f"unknown grader {rule['grader']!r}")
    margin = rule.get("margin", 0)
    if isinstance(margin, bool) or not isinstance(margin, int | float) or margin < 0:
        errors.add(f"{path}.margin", "must be a number, at least 0")


def apply_sources(specs: list[dict[str, Any]], *, actor: AbstractBaseUser, plan: Plan) -> None:
    users = {u.get_username(): u for u in get_user_model().objects.all()}
    for spec in specs:
        source = Source.objects.filter(slug=spec["slug"]).first()
        wanted = {
            "name": spec.get("name", spec["slug"]),
            "description": spec.get("description", ""),
            "owner": users[spec["owner"]],
            "redaction": spec.get("redaction") or [],
            "retention_days": spec.get("retention_days"),
        }
        if source is not None and all(getattr(source, k) == v for k, v in wanted.items()):
            plan.note("unchanged", f"source {spec['slug']}")
            continue
        target = source or Source(slug=spec["slug"])
        for key, value in wanted.items():
            setattr(target, key, value)
        services.save_source(target, actor=actor)
        plan.note("update" if source else "create", f"source {spec['slug']}")


def apply_monitors(specs: list[dict[str, Any]], *, actor: AbstractBaseUser, plan: Plan) -> None:
    users = {u.get_username(): u for u in get_user_model().objects.all()}
    graders = {g.slug: g for g in Grader.objects.all()}
    for spec in specs:
        monitor = Monitor.objects.filter(slug=spec["slug"]).first()
        fields = {key: spec.get(key, DEFAULTS[key]) for key in MONITOR_FIELDS}
        fields["name"] = spec.get("name", spec["slug"])
        fields["owner"] = users[spec["owner"]]
        fields["source"] = Source.objects.get(slug=spec["source"])
        fields["dataset"] = Dataset.objects.filter(slug=spec.get("dataset") or "").first()
        wanted_graders = sorted((graders[s] for s in spec.get("graders") or []), key=lambda g: g.pk)
        rules = [
            {
                "name": rule["name"],
                "metric": rule["metric"],
                "grader": graders.get(rule.get("grader", "")),
                "failure_class": rule.get("failure_class", ""),
                "margin": float(rule.get("margin", 0.0)),
                "active": bool(rule.get("active", True)),
            }
            for rule in spec.get("alert_rules") or []
        ]
        if monitor is not None and _unchanged(monitor, fields, wanted_graders, rules):
            plan.note("unchanged", f"monitor {spec['slug']}")
            continue
        target = monitor or Monitor(slug=spec["slug"])
        for key, value in fields.items():
            setattr(target, key, value)
        services.save_monitor(target, actor=actor, graders=wanted_graders)
        services.save_alert_rules(target, rules, actor=actor)
        plan.note("update" if monitor else "create", f"monitor {spec['slug']} ({len(rules)} alert rules)")


def _unchanged(
    monitor: Monitor, fields: dict[str, Any], graders: list[Grader], rules: list[dict[str, Any]]
) -> bool:
    if any(getattr(monitor, key) != value for key, value in fields.items()):
        return False
    if sorted(monitor.graders.values_list("pk", flat=True)) != [g.pk for g in graders]:
        return False
    current = list(AlertRule.objects.filter(monitor=monitor).order_by("pk"))
    return len(current) == len(rules) and all(
        all(getattr(existing, key) == value for key, value in wanted.items())
        for existing, wanted in zip(current, rules, strict=True)
    )
