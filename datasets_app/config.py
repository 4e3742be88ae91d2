"""The failure_classes and datasets sections of the declarative config (DESIGN.md section 8).

validate_* read raw YAML data and report every problem by path, touching nothing;
apply_* write the validated specs idempotently: an unchanged object gets no new history row.
Cases declared in a config are active in their tier, audited by the applying user (the pull
request review is the audit). A trusted case names its contributor (``contributed_by``, the
pull request's author); when that is missing, or is the applying user, or the applying user
changed the case since its last audit, the case arrives in review instead: four eyes hold
for configs too. A pinned case is never unpinned by a config (that takes two people).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from audit_app.choices import Action
from audit_app.services import record_event
from datasets_app import extensions
from datasets_app.choices import CaseSource, CaseStatus, Tier
from datasets_app.conversations import conversation_of
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
    contributors: dict[str, str] = field(default_factory=dict)  # case key -> username
    path: str = ""
    cases_file: Any = None


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


def inside(base_dir: Path, relative: str) -> Path | None:
    """``relative`` resolved under ``base_dir``, or None when it points outside it (``..``,
    an absolute path, a symlink out): a config names files beside itself, nothing else."""
    base = base_dir.resolve()
    target = (base / relative).resolve()
    return target if target == base or base in target.parents else None


def _split_contributors(items: list[Any]) -> tuple[list[Any], dict[int, Any]]:
    """Take ``contributed_by`` out of each case (a config-only key) by position."""
    contributors, plain = {}, []
    for position, item in enumerate(items, start=1):
        if isinstance(item, dict) and "contributed_by" in item:
            item = dict(item)
            contributors[position] = item.pop("contributed_by")
        plain.append(item)
    return plain, contributors


def _cases_file_lines(data: bytes) -> tuple[bytes, dict[int, Any]]:
    """The file with ``contributed_by`` taken out of each JSON line, line numbers kept."""
    lines, contributors = [], {}
    for number, line in enumerate(data.split(b"\n"), start=1):
        try:
            value = json.loads(line) if line.strip() else None
        except ValueError:
            value = None  # the importer reports it, with its line
        if isinstance(value, dict) and "contributed_by" in value:
            contributors[number] = value.pop("contributed_by")
            line = json.dumps(value).encode()
        lines.append(line)
    return b"\n".join(lines), contributors


def _cases(
    raw_cases: Any, path: str, errors: ConfigErrors, *, base_dir: Path, cases_file: Any, users: set[str]
) -> tuple[list[CaseSpec], dict[str, str]]:
    """Cases from the config or a JSONL file beside it, through the importer's checks, and
    each case's named contributor by key."""
    if cases_file is not None:
        file_path = inside(base_dir, str(cases_file))
        if file_path is None:
            errors.add(f"{path}.cases_file", f"{cases_file} is outside the config file's directory")
            return [], {}
        try:
            data, by_line = _cases_file_lines(file_path.read_bytes())
        except OSError as exc:
            errors.add(f"{path}.cases_file", f"cannot read {cases_file}: {exc.strerror}")
            return [], {}
    else:
        items, by_line = _split_contributors(as_list(raw_cases, f"{path}.cases", errors))
        data = "\n".join(json.dumps(item, default=str) for item in items).encode()
    try:
        specs = parse_cases(data, "jsonl", default_tier="monitoring")
    except ImportFailed as exc:
        for error in exc.errors:
            errors.add(f"{_case_path(path, cases_file, error.line)}.{error.field}", error.message)
        return [], {}
    contributors = {}
    for spec in specs:
        where = _case_path(path, cases_file, spec.line)
        if not spec.failure_class:
            errors.add(f"{where}.failure_class", "is required in a config")
        name = by_line.get(spec.line)
        if name is not None and (not isinstance(name, str) or name not in users):
            errors.add(f"{where}.contributed_by", f"no user named {name!r}")
        elif name is not None:
            contributors[spec.key] = name
    return specs, contributors


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
        cases, contributors = None, {}
        if "cases" in item or "cases_file" in item:
            cases, contributors = _cases(
                item.get("cases"),
                path,
                errors,
                base_dir=base_dir,
                cases_file=item.get("cases_file"),
                users=users,
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
                contributors,
                path,
                item.get("cases_file"),
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
            try:
                dataset = save_dataset(
                    slug=spec.slug, name=spec.name, owner=owner, description=spec.description, actor=actor
                )
            except PermissionDenied as exc:
                raise PermissionDenied(f"{spec.path}: {exc}") from None
        if spec.cases is not None:
            require_perm(actor, "datasets_app.audit_case", "declare active cases (an audit)")
            _apply_cases(dataset, spec, actor=actor, plan=plan)


def _arrival(spec: CaseSpec, case: Case | None, contributor: Any, actor: AbstractBaseUser) -> str:
    """Active, unless four eyes do not hold for a trusted case (then: in review)."""
    if spec.tier != Tier.TRUSTED:
        return CaseStatus.ACTIVE
    if contributor is None or contributor.pk == actor.pk:
        return CaseStatus.IN_REVIEW
    if case is not None and actor.pk in case.editors_since_audit:
        return CaseStatus.IN_REVIEW
    return CaseStatus.ACTIVE


def _apply_cases(dataset: Dataset, dataset_spec: DatasetSpec, *, actor: AbstractBaseUser, plan: Plan) -> None:
    specs = dataset_spec.cases or []
    classes = {fc.slug: fc for fc in FailureClass.objects.all()}
    existing = {c.key: c for c in Case.objects.filter(dataset=dataset, key__in=[s.key for s in specs])}
    users = {
        u.username: u
        for u in get_user_model().objects.filter(username__in=set(dataset_spec.contributors.values()))
    }
    now = timezone.now()
    new, changed, in_review = [], [], []
    for spec in specs:
        contributor = users.get(dataset_spec.contributors.get(spec.key, ""))
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
        status = _arrival(spec, case, contributor, actor)
        audited = status == CaseStatus.ACTIVE
        if case is None:
            new.append(
                Case(
                    dataset=dataset,
                    key=spec.key,
                    status=status,
                    source=CaseSource.AUTHORED,
                    contributed_by=contributor,
                    audited_by=actor if audited else None,
                    audited_at=now if audited else None,
                    editors_since_audit=[] if audited else [actor.pk],
                    **wanted,
                )
            )
            if not audited:
                in_review.append(spec.key)
            continue
        if case.pinned and not spec.pinned:
            raise ValidationError(
                f"{dataset_spec.path}: case {spec.key} is pinned; a config cannot unpin it (that takes "
                "two people: request it in the admin and have it confirmed)"
            )
        differs = {f for f, v in wanted.items() if getattr(case, f) != v}
        if not differs and case.status == status:
            continue
        if not differs and case.status == CaseStatus.IN_REVIEW and not audited:
            continue  # still waiting for the audit the config cannot give
        for field_name, value in wanted.items():
            setattr(case, field_name, value)
        if differs - {"tier"}:
            case.revision += 1
            case.edited_by = actor
        if audited:
            case.status, case.audited_by, case.audited_at, case.editors_since_audit = status, actor, now, []
        else:
            case.status = CaseStatus.IN_REVIEW
            if differs:
                case.editors_since_audit = sorted({*case.editors_since_audit, actor.pk})
            in_review.append(spec.key)
        case.contributed_by = case.contributed_by or contributor
        case.updated_at = now
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
                "editors_since_audit",
                "edited_by",
                "contributed_by",
                "updated_at",
            ],
            batch_size=1000,
            default_user=actor,
            default_change_reason="changed in config",
        )
    if new or changed:
        record_event(
            Action.CASES_DECLARED,
            actor=actor,
            obj=dataset,
            details={
                "created": [c.key for c in new][:200],
                "changed": [c.key for c in changed][:200],
                "in_review": in_review[:200],
                "contributors": {
                    key: name for key, name in dataset_spec.contributors.items() if key not in in_review
                },
            },
        )
    unchanged = len(specs) - len(new) - len(changed)
    if new:
        plan.note("create", f"{len(new)} case(s) in {dataset.slug}")
    if changed:
        plan.note(
            "update", f"{len(changed)} case(s) in {dataset.slug}: " + ", ".join(c.key for c in changed[:10])
        )
    if in_review:
        plan.note(
            "review",
            f"{len(in_review)} trusted case(s) in {dataset.slug} arrive in review (no contributed_by other "
            f"than {actor.username}, or {actor.username} changed them): " + ", ".join(in_review[:10]),
        )
    if unchanged:
        plan.note("unchanged", f"{unchanged} case(s) in {dataset.slug}")


def persona_references(specs: list[DatasetSpec]) -> list[tuple[str, str]]:
    """(path, rubric slug) of each simulated user the declared cases name, for the caller to
    check against the rubrics it knows (rubrics are grading_app's)."""
    found = []
    for spec in specs:
        for case in spec.cases or []:
            conversation = conversation_of(case.input)
            if conversation is not None and conversation.simulated:
                where = _case_path(spec.path, spec.cases_file, case.line)
                found.append((f"{where}.input.simulated_user.rubric", conversation.persona))
    return found


def check_pinned_gradable(specs: list[DatasetSpec]) -> list[tuple[str, str]]:
    """(path, problem) for each active pinned case no grader would grade, asked once every
    section (graders included) is applied, inside the same transaction."""
    problems = []
    for spec in specs:
        keys = [c.key for c in spec.cases or [] if c.pinned]
        cases = Case.objects.filter(dataset__slug=spec.slug, key__in=keys, status=CaseStatus.ACTIVE)
        for case in cases.select_related("failure_class"):
            if problem := extensions.grading_problem(case):
                line = next(c.line for c in spec.cases if c.key == case.key)
                problems.append((f"{_case_path(spec.path, spec.cases_file, line)}.expected", problem))
    return problems
