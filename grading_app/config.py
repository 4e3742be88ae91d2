"""The endpoints, rubrics and graders sections of the declarative config (DESIGN.md section 8).

Rubric versions are listed oldest first and numbered by position; an existing version is
never rewritten (a change is a new version). A version with ``approved_by`` is approved only
if that user owns the rubric, did not write the version, and is the user applying the config.
"""

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError

from datasets_app.models import FailureClass
from evalproject.config import ConfigErrors, Plan, as_list, check_fields, check_keys
from grading_app import graders, services
from grading_app.choices import Dimension, RubricScale, RubricState
from grading_app.models import Endpoint, Grader, Rubric, RubricVersion, Target
from grading_app.models.rubrics import PROMPT_TEMPLATES
from grading_app.targets import validate_target_config

ENDPOINT_FIELDS = {
    "base_url": str,
    "api_key_env": str,
    "max_concurrency": int,
    "timeout_s": (int, float),
    "max_retries": int,
    "price_in_per_mtok": (int, float),
    "price_out_per_mtok": (int, float),
}
VERSION_KEYS = (
    "criteria",
    "scale",
    "pass_threshold",
    "endpoint",
    "model",
    "prompt_template",
    "template",
    "few_shot",
    "author",
    "approved_by",
)


@dataclass
class GradingSpecs:
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    rubrics: list[dict[str, Any]] = field(default_factory=list)
    graders: list[dict[str, Any]] = field(default_factory=list)


def _typed(item: dict[str, Any], path: str, types: dict[str, Any], errors: ConfigErrors) -> None:
    for key, wanted in types.items():
        value = item.get(key)
        if value is not None and (not isinstance(value, wanted) or isinstance(value, bool)):
            errors.add(f"{path}.{key}", "has the wrong type")


def rubric_slugs(specs: GradingSpecs) -> set[str]:
    """The rubrics a config may refer to: those it declares and those that exist."""
    return {r["slug"] for r in specs.rubrics} | set(Rubric.objects.values_list("slug", flat=True))


def validate(
    raw: dict[str, Any], errors: ConfigErrors, *, failure_classes: set[str], actor: AbstractBaseUser
) -> GradingSpecs:
    specs = GradingSpecs()
    users = set(get_user_model().objects.values_list("username", flat=True))
    for i, item in enumerate(as_list(raw.get("endpoints"), "endpoints", errors)):
        path = f"endpoints[{i}]"
        if check_keys(item, path, errors, required=("name", "base_url"), optional=tuple(ENDPOINT_FIELDS)):
            _typed(item, path, ENDPOINT_FIELDS, errors)
            if not any(p.startswith(path) for p, _ in errors.items):
                endpoint = Endpoint(name=item["name"], **{k: item[k] for k in ENDPOINT_FIELDS if k in item})
                check_fields(endpoint, path, errors)
                if endpoint.max_concurrency < 1:
                    errors.add(f"{path}.max_concurrency", "must be at least 1")
                if endpoint.timeout_s <= 0:
                    errors.add(f"{path}.timeout_s", "must be positive")
            specs.endpoints.append(item)
    endpoints = {e["name"] for e in specs.endpoints} | set(Endpoint.objects.values_list("name", flat=True))
    for i, item in enumerate(as_list(raw.get("targets"), "targets", errors)):
        path = f"targets[{i}]"
        if not check_keys(
            item, path, errors, required=("slug", "kind"), optional=("name", "endpoint", "config")
        ):
            continue
        if item.get("endpoint") and item["endpoint"] not in endpoints:
            errors.add(f"{path}.endpoint", f"unknown endpoint {item['endpoint']!r}")
        check_fields(
            Target(slug=str(item["slug"]), name=str(item.get("name", ""))),
            path,
            errors,
            exclude=("kind", "endpoint", "config"),
        )
        try:
            validate_target_config(item["kind"], item.get("config"))
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                for message in messages:
                    errors.add(f"{path}.{key}", message)
        specs.targets.append(item)
    for i, item in enumerate(as_list(raw.get("rubrics"), "rubrics", errors)):
        path = f"rubrics[{i}]"
        if not check_keys(
            item,
            path,
            errors,
            required=("slug", "owner"),
            optional=("name", "description", "co_owners", "versions"),
        ):
            continue
        if item["owner"] not in users:
            errors.add(f"{path}.owner", f"no user named {item['owner']!r}")
        owners = {item["owner"]}
        for j, name in enumerate(as_list(item.get("co_owners"), f"{path}.co_owners", errors)):
            if name not in users:
                errors.add(f"{path}.co_owners[{j}]", f"no user named {name!r}")
            owners.add(name)
        check_fields(
            Rubric(slug=str(item["slug"]), name=str(item.get("name", item["slug"]))),
            path,
            errors,
            exclude=("owner",),
        )
        existing = {
            v.number: v
            for v in RubricVersion.objects.filter(rubric__slug=item["slug"]).select_related("endpoint")
        }
        for j, version in enumerate(as_list(item.get("versions"), f"{path}.versions", errors)):
            vpath = f"{path}.versions[{j}]"
            if not check_keys(
                version,
                vpath,
                errors,
                required=("criteria", "endpoint", "model", "author"),
                optional=VERSION_KEYS,
            ):
                continue
            if version["endpoint"] not in endpoints:
                errors.add(f"{vpath}.endpoint", f"unknown endpoint {version['endpoint']!r}")
            for who in ("author", "approved_by"):
                if version.get(who) is not None and version[who] not in users:
                    errors.add(f"{vpath}.{who}", f"no user named {version[who]!r}")
            if version.get("template") is not None:
                if not isinstance(version["template"], str) or version["template"] not in PROMPT_TEMPLATES:
                    errors.add(f"{vpath}.template", f"must be one of {', '.join(PROMPT_TEMPLATES)}")
                    continue
                if version.get("prompt_template") is not None:
                    errors.add(f"{vpath}.template", "give template or prompt_template, not both")
                    continue
            if version.get("scale", RubricScale.BINARY) not in RubricScale.values:
                errors.add(f"{vpath}.scale", f"must be one of {', '.join(RubricScale.values)}")
            threshold = version.get("pass_threshold", 1)
            if (
                isinstance(threshold, bool)
                or not isinstance(threshold, int | float)
                or not 0 <= threshold <= 1
            ):
                errors.add(f"{vpath}.pass_threshold", "must be a number from 0 to 1")
                continue
            current = existing.get(j + 1)
            spec_endpoint = Endpoint.objects.filter(name=version["endpoint"]).first()
            if current is not None and not _same(current, _version_content(version, spec_endpoint)):
                errors.add(
                    vpath,
                    f"differs from rubric {item['slug']} v{j + 1}: versions are never rewritten, add one",
                )
            approver = version.get("approved_by")
            if current is not None and current.is_approved:
                pass  # signed off already: re-applying the file asks nothing more of anyone
            elif approver is not None:
                if approver not in owners:
                    errors.add(
                        f"{vpath}.approved_by", "only an owner of the rubric (owner or co_owners) approves"
                    )
                elif approver == version["author"]:
                    errors.add(f"{vpath}.approved_by", "the author cannot approve their own version")
                elif approver != actor.get_username():
                    errors.add(f"{vpath}.approved_by", "must be the user applying the config (--as)")
        specs.rubrics.append(item)
    rubrics = rubric_slugs(specs)
    for i, item in enumerate(as_list(raw.get("graders"), "graders", errors)):
        path = f"graders[{i}]"
        if not check_keys(
            item,
            path,
            errors,
            required=("slug", "kind"),
            optional=("name", "dimension", "config", "failure_classes", "rubric"),
        ):
            continue
        try:
            kind = graders.get_kind(item["kind"])
            kind.validate_config(item.get("config"))
        except ValidationError as exc:
            for messages in exc.message_dict.values():
                for message in messages:
                    errors.add(f"{path}.{'kind' if 'Unknown grader kind' in message else 'config'}", message)
            continue
        check_fields(
            Grader(slug=str(item["slug"]), name=str(item.get("name", ""))),
            path,
            errors,
            exclude=("kind", "config", "dimension", "rubric", "rubric_version"),
        )
        if item.get("dimension") and item["dimension"] not in Dimension.values:
            errors.add(f"{path}.dimension", f"must be one of {', '.join(Dimension.values)}")
        for j, slug in enumerate(as_list(item.get("failure_classes"), f"{path}.failure_classes", errors)):
            if slug not in failure_classes:
                errors.add(f"{path}.failure_classes[{j}]", f"unknown failure class {slug!r}")
        if kind.needs_rubric and not item.get("rubric"):
            errors.add(f"{path}.rubric", f"a {item['kind']} grader needs a rubric")
        if item.get("rubric") and item["rubric"] not in rubrics:
            errors.add(f"{path}.rubric", f"unknown rubric {item['rubric']!r}")
        specs.graders.append(item)
    return specs


def _same(obj: Any, values: dict[str, Any]) -> bool:
    return all(getattr(obj, key) == value for key, value in values.items())


def apply(specs: GradingSpecs, *, actor: AbstractBaseUser, plan: Plan) -> None:
    users = {u.get_username(): u for u in get_user_model().objects.all()}
    for item in specs.endpoints:
        values = {k: item[k] for k in ENDPOINT_FIELDS if k in item}
        current = Endpoint.objects.filter(name=item["name"]).first()
        if current and _same(current, values):
            plan.note("unchanged", f"endpoint {item['name']}")
            continue
        services.save_endpoint(name=item["name"], actor=actor, **values)
        plan.note("update" if current else "create", f"endpoint {item['name']}")
    for item in specs.targets:
        endpoint = Endpoint.objects.filter(name=item.get("endpoint") or "").first()
        values = {
            "kind": item["kind"],
            "config": item.get("config") or {},
            "endpoint": endpoint,
            "name": item.get("name", ""),
        }
        current = Target.objects.filter(slug=item["slug"]).first()
        if current and _same(current, values):
            plan.note("unchanged", f"target {item['slug']}")
            continue
        services.save_target(slug=item["slug"], actor=actor, **values)
        plan.note("update" if current else "create", f"target {item['slug']}")
    for item in specs.rubrics:
        _apply_rubric(item, users, actor=actor, plan=plan)
    for item in specs.graders:
        _apply_grader(item, actor=actor, plan=plan)


def _version_content(spec: dict[str, Any], endpoint: Endpoint | None) -> dict[str, Any]:
    return {
        "criteria": spec["criteria"],
        "scale": spec.get("scale", RubricScale.BINARY),
        "pass_threshold": float(spec.get("pass_threshold", 1)),
        "endpoint_id": endpoint.pk if endpoint else None,
        "model": spec["model"],
        "prompt_template": spec.get("prompt_template") or PROMPT_TEMPLATES[spec.get("template") or "default"],
        "few_shot": spec.get("few_shot", []),
    }


def _apply_rubric(
    item: dict[str, Any], users: dict[str, Any], *, actor: AbstractBaseUser, plan: Plan
) -> None:
    owner = users[item["owner"]]
    rubric = Rubric.objects.filter(slug=item["slug"]).first()
    values = {
        "name": item.get("name", item["slug"]),
        "description": item.get("description", ""),
        "owner": owner,
    }
    co_owners = sorted((users[name] for name in item.get("co_owners") or []), key=lambda u: u.pk)
    same_co_owners = rubric is not None and sorted(rubric.co_owners.values_list("pk", flat=True)) == [
        u.pk for u in co_owners
    ]
    if rubric is None or not _same(rubric, values) or not same_co_owners:
        plan.note("update" if rubric else "create", f"rubric {item['slug']}")
        rubric = services.save_rubric(slug=item["slug"], actor=actor, co_owners=co_owners, **values)
    else:
        plan.note("unchanged", f"rubric {item['slug']}")
    existing = {v.number: v for v in RubricVersion.objects.filter(rubric=rubric).select_related("endpoint")}
    endpoints = {e.name: e for e in Endpoint.objects.all()}
    for number, spec in enumerate(item.get("versions") or [], start=1):
        content = _version_content(spec, endpoints[spec["endpoint"]])
        version = existing.get(number)
        label = f"rubric {rubric.slug} v{number}"
        if version is None:
            fields = {k: v for k, v in content.items() if k != "endpoint_id"}
            version = services.create_rubric_version(
                rubric,
                actor=users[spec["author"]],
                note="from config",
                endpoint=endpoints[spec["endpoint"]],
                **fields,
            )
            plan.note("create", label)
        elif not _same(version, content):
            raise ValidationError(
                f"{label} exists with other content: versions are never rewritten; add a new one."
            )
        if spec.get("approved_by") and version.state in (RubricState.DRAFT, RubricState.SUBMITTED):
            if version.state == RubricState.DRAFT:
                version = services.submit_rubric_version(
                    version, actor=users[spec["author"]], note="from config"
                )
            services.approve_rubric_version(version, actor=actor, note="approved in config")
            plan.note("approve", label)
        elif version.pk in {v.pk for v in existing.values()}:
            plan.note("unchanged", label)


def _apply_grader(item: dict[str, Any], *, actor: AbstractBaseUser, plan: Plan) -> None:
    classes = list(FailureClass.objects.filter(slug__in=item.get("failure_classes") or []).order_by("slug"))
    rubric = Rubric.objects.filter(slug=item["rubric"]).first() if item.get("rubric") else None
    kind = graders.get_kind(item["kind"])
    config = kind.validate_config(item.get("config"))
    current = Grader.objects.filter(slug=item["slug"]).prefetch_related("failure_classes").first()
    values = {
        "kind": item["kind"],
        "config": config,
        "dimension": item.get("dimension") or kind.dimension,
        "name": item.get("name", ""),
        "rubric": rubric,
    }
    if (
        current
        and _same(current, values)
        and sorted(fc.slug for fc in current.failure_classes.all()) == [fc.slug for fc in classes]
    ):
        plan.note("unchanged", f"grader {item['slug']}")
        return
    services.save_grader(slug=item["slug"], failure_classes=classes, actor=actor, **values)
    plan.note("update" if current else "create", f"grader {item['slug']}")
