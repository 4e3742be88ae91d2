"""The failure_classes and datasets sections of the declarative config (DESIGN.md section 8).

validate_* read raw YAML data and report every problem by path, touching nothing;
apply_* write the validated specs idempotently: an unchanged object gets no new history row.
Cases declared in a config are active in their tier, audited by the applying user (the pull
request review is the audit); their contributor is the pull request's author, not recorded.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from datasets_app.choices import CaseSource, CaseStatus
from datasets_app.importers import CaseSpec, ImportFailed, parse_cases
from datasets_app.models import Case, Dataset, FailureClass
from datasets_app.services import require_perm, save_dataset, save_failure_class
from evalproject.config import ConfigErrors, Plan, as_list, check_fields, check_keys


@dataclass(frozen=True)
class FailureClassSpec:
    slug: str
    name: str
    description: str


@dataclass(frozen=True)
class DatasetSpec:
    slug: str
    name: str
    description: str
    owner: str | None
    cases: list[CaseSpec] | None  # None: the config does not manage this dataset's cases


def validate_failure_classes(raw: Any, errors: ConfigErrors) -> list[FailureClassSpec]:
    specs = []
    for i, item in enumerate(as_list(raw, "failure_classes", errors)):
        path = f"failure_classes[{i}]"
        if check_keys(item, path, errors, required=("slug", "name"), optional=("description",)):
            spec = FailureClassSpec(str(item["slug"]), str(item["name"]), str(item.get("description", "")))
            check_fields(
                FailureClass(slug=spec.slug, name=spec.name, description=spec.description), path, errors
            )
            specs.append(spec)
    return specs


def _case_path(path: str, cases_file: Any, line: int) -> str:
    """Where a case is declared: its line in the cases_file, else its index in the cases list."""
    if cases_file is not None:
        return f"{path}.cases_file ({cases_file}) line {line}"
    return f"{path}.cases[{line - 1}]"


def _cases(
    raw_cases: Any, path: str, errors: ConfigErrors, *, base_dir: Path, cases_file: Any
) -> list[CaseSpec]:
    """Cases from the config or a JSONL file next to it, through the importer's checks."""
    if cases_file is not None:
        file_path = base_dir / str(cases_file)
        try:
            data = file_path.read_bytes()
        except OSError as exc:
            errors.add(f"{path}.cases_file", f"cannot read {file_path}: {exc.strerror}")
            return []
    else:
        items = as_list(raw_cases, f"{path}.cases", errors)
        data = "\n".join(json.dumps(item, default=str) for item in items).encode()
    try:
        specs = parse_cases(data, "jsonl", default_tier="monitoring")
    except ImportFailed as exc:
        for error in exc.errors:
            errors.add(f"{_case_path(path, cases_file, error.line)}.{error.field}", error.message)
        return []
    for spec in specs:
        if not spec.failure_class:
            errors.add(f"{_case_path(path, cases_file, spec.line)}.failure_class", "is required in a config")
    return specs


def validate_datasets(
    raw: Any, errors: ConfigErrors, *, failure_classes: set[str], base_dir: Path
) -> list[DatasetSpec]:
    specs = []
    users = set(get_user_model().objects.values_list("username", flat=True))
    known_classes = failure_classes | set(FailureClass.objects.values_list("slug", flat=True))
    for i, item in enumerate(as_list(raw, "datasets", errors)):
        path = f"datasets[{i}]"
        if not check_keys(
            item,
            path,
            errors,
            required=("slug", "name"),
            optional=("description", "owner", "cases", "cases_file"),
        ):
            continue
        check_fields(
            Dataset(
                slug=str(item["slug"]), name=str(item["name"]), description=str(item.get("description", ""))
            ),
            path,
            errors,
            exclude=("owner",),
        )
        if item.get("owner") is not None and (
            not isinstance(item["owner"], str) or item["owner"] not in users
        ):
            errors.add(f"{path}.owner", f"no user named {item['owner']!r}")
        if "cases" in item and "cases_file" in item:
            errors.add(path, "give cases or cases_file, not both")
            continue
        cases = None
        if "cases" in item or "cases_file" in item:
            cases = _cases(
                item.get("cases"), path, errors, base_dir=base_dir, cases_file=item.get("cases_file")
            )
            for spec in cases:
                if spec.failure_class and spec.failure_class not in known_classes:
                    errors.add(
                        f"{_case_path(path, item.get('cases_file'), spec.line)}.failure_class",
                        f"unknown {spec.failure_class!r}",
                    )
        specs.append(
            DatasetSpec(
                str(item["slug"]),
                str(item["name"]),
                str(item.get("description", "")),
                item.get("owner"),
                cases,
            )
        )
    return specs


def apply_failure_classes(specs: list[FailureClassSpec], *, actor: AbstractBaseUser, plan: Plan) -> None:
    existing = {fc.slug: fc for fc in FailureClass.objects.filter(slug__in=[s.slug for s in specs])}
    for spec in specs:
        current = existing.get(spec.slug)
        if current and (current.name, current.description) == (spec.name, spec.description):
            plan.note("unchanged", f"failure class {spec.slug}")
            continue
        save_failure_class(slug=spec.slug, name=spec.name, description=spec.description, actor=actor)
        plan.note("update" if current else "create", f"failure class {spec.slug}")


def apply_datasets(specs: list[DatasetSpec], *, actor: AbstractBaseUser, plan: Plan) -> None:
    users = {
        u.username: u
        for u in get_user_model().objects.filter(username__in=[s.owner for s in specs if s.owner])
    }
    for spec in specs:
        owner = users.get(spec.owner) if spec.owner else None
        dataset = Dataset.objects.filter(slug=spec.slug).first()
        if dataset and (dataset.name, dataset.description, dataset.owner_id) == (
            spec.name,
            spec.description,
            owner.pk if owner else None,
        ):
            plan.note("unchanged", f"dataset {spec.slug}")
        else:
            plan.note("update" if dataset else "create", f"dataset {spec.slug}")
            dataset = save_dataset(
                slug=spec.slug, name=spec.name, owner=owner, description=spec.description, actor=actor
            )
        if spec.cases is not None:
            require_perm(actor, "datasets_app.audit_case", "declare active cases (an audit)")
            _apply_cases(dataset, spec.cases, actor=actor, plan=plan)


def _apply_cases(dataset: Dataset, specs: list[CaseSpec], *, actor: AbstractBaseUser, plan: Plan) -> None:
    classes = {fc.slug: fc for fc in FailureClass.objects.all()}
    existing = {c.key: c for c in Case.objects.filter(dataset=dataset, key__in=[s.key for s in specs])}
    now = timezone.now()
    new, changed = [], []
    for spec in specs:
        wanted = {
            "tier": spec.tier,
            "failure_class_id": classes[spec.failure_class].pk,
            "risk": spec.risk,
            "pinned": spec.pinned,
            "tags": spec.tags,
            "input": spec.input,
            "expected": spec.expected,
        }
        case = existing.get(spec.key)
        if case is None:
            new.append(
                Case(
                    dataset=dataset,
                    key=spec.key,
                    status=CaseStatus.ACTIVE,
                    source=CaseSource.AUTHORED,
                    audited_by=actor,
                    audited_at=now,
                    **wanted,
                )
            )
            continue
        differs = {f for f, v in wanted.items() if getattr(case, f) != v}
        if not differs and case.status == CaseStatus.ACTIVE:
            continue
        for field_name, value in wanted.items():
            setattr(case, field_name, value)
        if differs - {"tier"}:
            case.revision += 1
        case.status, case.audited_by, case.audited_at, case.updated_at = CaseStatus.ACTIVE, actor, now, now
        changed.append(case)
    if new:
        bulk_create_with_history(
            new, Case, batch_size=1000, default_user=actor, default_change_reason="declared in config"
        )
    if changed:
        bulk_update_with_history(
            changed,
            Case,
            [
                "tier",
                "failure_class",
                "risk",
                "pinned",
                "tags",
                "input",
                "expected",
                "revision",
                "status",
                "audited_by",
                "audited_at",
                "updated_at",
            ],
            batch_size=1000,
            default_user=actor,
            default_change_reason="changed in config",
        )
    unchanged = len(specs) - len(new) - len(changed)
    if new:
        plan.note("create", f"{len(new)} case(s) in {dataset.slug}")
    if changed:
        plan.note(
            "update", f"{len(changed)} case(s) in {dataset.slug}: " + ", ".join(c.key for c in changed[:10])
        )
    if unchanged:
        plan.note("unchanged", f"{unchanged} case(s) in {dataset.slug}")
