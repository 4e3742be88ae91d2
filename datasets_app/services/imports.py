"""Bulk import and export of cases: validate every line first, then write once."""

import dataclasses
from collections.abc import Sequence

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from audit_app.choices import Action
from audit_app.services import record_event
from datasets_app.choices import CaseSource, CaseStatus, Tier
from datasets_app.extensions import apply_plan_parts, check_plan_parts
from datasets_app.importers import (
    CaseRefs,
    CaseSpec,
    ImportFailed,
    ImportPlan,
    LineError,
    export_csv,
    export_jsonl,
    export_promptfoo,
)
from datasets_app.models import UNCLASSIFIED, Case, Dataset, FailureClass
from datasets_app.services.cases import Actor, require_perm, save_failure_class, stamp
from evalproject.bulk import copy_insert_with_history, refresh_statistics

KEY_BATCH = 10_000
EXPORT_FORMATS = ("jsonl", "csv", "promptfoo")


@dataclasses.dataclass(frozen=True)
class ImportSettings:
    """What the person importing decides beyond the file: whether losses are accepted, and the
    judge, rubric owner and gate that the plan's rubric drafts and rules need."""

    allow_lossy: bool = False
    judge_endpoint: str | None = None  # an Endpoint name: the judge of imported rubric drafts
    judge_model: str | None = None
    rubric_owner: str | None = None  # a username: who signs the drafts off (default: the importer)
    gate: str | None = None  # a Gate slug for the plan's rules (default: the dataset's only gate)
    embedding_endpoint: str | None = None  # an Endpoint name: embeddings for similarity checks
    embedding_model: str | None = None


def _unclassified() -> FailureClass:
    existing = FailureClass.objects.filter(slug=UNCLASSIFIED).first()
    return existing or save_failure_class(
        slug=UNCLASSIFIED,
        name="Unclassified (needs triage)",
        description="Imported without a failure class. Move each case to the class it probes.",
    )


def _check(
    dataset: Dataset, lines: list[CaseRefs], classes: set[str], actor: Actor, unit: str
) -> list[LineError]:
    errors = []
    keys = [line.key for line in lines if line.key is not None]
    existing: set[str] = set()
    for start in range(0, len(keys), KEY_BATCH):  # SQLite caps the parameters of one query
        batch = keys[start : start + KEY_BATCH]
        existing |= set(Case.objects.filter(dataset=dataset, key__in=batch).values_list("key", flat=True))
    may_activate = actor is None or actor.has_perm("datasets_app.audit_case")
    for line in lines:
        if line.key is not None and line.key in existing:
            errors.append(
                LineError(line.line, "key", f"a case {line.key!r} already exists in {dataset.slug}", unit)
            )
        if line.failure_class and line.failure_class not in classes:
            errors.append(
                LineError(line.line, "failure_class", f"unknown failure class {line.failure_class!r}", unit)
            )
        # A line whose tier is in error says nothing yet about whether activating it is allowed.
        if line.status == CaseStatus.ACTIVE and line.tier == Tier.MONITORING and not may_activate:
            errors.append(LineError(line.line, "status", "only reviewers may import active cases", unit))
    return errors


def imported_status(spec: CaseSpec) -> str:
    """Draft unless the file says otherwise. A trusted case the file calls active arrives in
    review: its audit must come from a second person, not from a file (so an exported
    dataset imports again, with its trusted cases waiting for that audit)."""
    if spec.status == CaseStatus.ACTIVE and spec.tier == Tier.TRUSTED:
        return CaseStatus.IN_REVIEW
    return spec.status or CaseStatus.DRAFT


def imported_status_note(spec: CaseSpec) -> str:
    """Why a case arrives in the state imported_status() gives, where the file alone does not say."""
    status = imported_status(spec)
    if spec.status == CaseStatus.ACTIVE and status == CaseStatus.IN_REVIEW:
        return (
            "The file says active, but a trusted case arrives in review: only an audit by someone "
            "other than its contributor makes it active."
        )
    if status == CaseStatus.ACTIVE:
        return "Active at once: whoever imports it is recorded as its auditor."
    return ""


def _as_plan(cases: ImportPlan | Sequence[CaseSpec]) -> ImportPlan:
    return cases if isinstance(cases, ImportPlan) else ImportPlan(specs=list(cases))


def check_import(
    dataset: Dataset,
    cases: ImportPlan | Sequence[CaseSpec],
    *,
    actor: Actor,
    settings: ImportSettings = ImportSettings(),
) -> list[LineError]:
    """Every problem of an import, without writing (for previews), in file and line order.

    Given read_cases()'s plan, that is the file's own errors, every construct it cannot
    carry (unless ``settings.allow_lossy``), what its graders, rubric drafts and gate rules
    need (permissions, a judge endpoint, a gate), and the database conflicts (existing keys,
    unknown failure classes, statuses not allowed) of every line, bad lines included, so one
    attempt shows them all. Given specs, only their database conflicts.
    """
    plan = _as_plan(cases)
    if not plan.specs and not plan.errors:
        return [LineError(0, "file", "the file has no cases")]
    lines = [spec.refs() for spec in plan.specs] + plan.rejected
    slugs = {line.failure_class for line in lines if line.failure_class}
    classes = set(FailureClass.objects.filter(slug__in=slugs).values_list("slug", flat=True))
    conflicts = _check(dataset, lines, classes, actor, plan.unit)
    lossy = [] if settings.allow_lossy else [dropped.as_error() for dropped in plan.dropped]
    # A stable sort: on one line, the file's own errors come before its database conflicts.
    problems = sorted([*plan.errors, *lossy, *conflicts], key=lambda error: (error.file, error.line))
    return problems + check_plan_parts(plan, settings, actor, dataset)


@transaction.atomic
def import_cases(
    dataset: Dataset,
    cases: ImportPlan | Sequence[CaseSpec],
    *,
    actor: Actor,
    failure_class: FailureClass | None = None,
    contributor: AbstractBaseUser | None = None,
    source_name: str = "",
    settings: ImportSettings = ImportSettings(),
) -> list[Case]:
    """Apply an import plan (read_cases()'s result, or specs) to ``dataset``, all or nothing:
    its cases, one history row each, and what they need (graders, rubric drafts waiting for
    their owner's sign-off, gate rules) through the apps that own those.

    A plan with constructs it cannot carry is refused unless ``settings.allow_lossy``; then
    what was dropped is stored on the dataset's history and in the audit event.

    The cases are contributed by ``actor`` (or ``contributor``: the issuer of the token they
    came through), so that person can never audit them into trusted. Lines without a failure
    class take ``failure_class``, else the ``unclassified`` class, which the admin flags for
    triage. Raises ImportFailed listing every bad line, as check_import() does: the file's
    own errors and every conflict with the database (existing keys, unknown failure classes,
    statuses not allowed).
    """
    require_perm(actor, "datasets_app.import_cases", "import cases")
    plan = _as_plan(cases)
    errors = check_import(dataset, plan, actor=actor, settings=settings)
    if errors:
        raise ImportFailed(errors)
    specs = plan.specs
    classes = {fc.slug: fc for fc in FailureClass.objects.filter(slug__in={s.failure_class for s in specs})}
    fallback = failure_class
    if fallback is None and any(not s.failure_class for s in specs):
        fallback = _unclassified()
    now = timezone.now()
    fields = [
        {
            "dataset_id": dataset.pk,
            "key": s.key,
            "tier": s.tier,
            "status": imported_status(s),
            "failure_class_id": (classes[s.failure_class] if s.failure_class else fallback).pk,
            "risk": s.risk,
            "pinned": s.pinned,
            "tags": s.tags,
            "input": s.input,
            "expected": s.expected,
            "source": CaseSource.IMPORTED,
            "contributed_by_id": getattr(contributor or actor, "pk", None),
            # Importing a case as active is the importer's audit (_check allowed it): record it.
            "audited_by_id": getattr(actor, "pk", None) if imported_status(s) == CaseStatus.ACTIVE else None,
            "audited_at": now if imported_status(s) == CaseStatus.ACTIVE else None,
        }
        for s in specs
    ]
    if connection.vendor == "postgresql":  # COPY: the ORM's insert compilation was most of an import
        created = copy_insert_with_history(
            Case, fields, match_on=("key",), user=actor, change_reason="imported"
        )
    else:
        created = bulk_create_with_history(
            [Case(**row) for row in fields],
            Case,
            batch_size=1000,
            default_user=actor,
            default_change_reason="imported",
        )
    refresh_statistics(Case, len(created))
    written = apply_plan_parts(plan, settings, actor, dataset)
    dropped = [str(d) for d in plan.dropped]
    if dropped:
        # The dataset's own history says what this import left behind, next to who did it.
        stamp(dataset, actor, f"imported {source_name or plan.source} without: " + "; ".join(dropped))
        dataset.save(update_fields=["updated_at"])
    record_event(
        Action.CASES_IMPORTED,
        actor=actor,
        obj=dataset,
        details={
            "cases": len(created),
            "keys": [c.key for c in created[:50]],
            "contributed_by": (contributor or actor).pk if (contributor or actor) else None,
            "source": source_name or plan.source,
            "active": sum(1 for c in created if c.status == CaseStatus.ACTIVE),
            "dropped": dropped,
            "written": written,
        },
    )
    return created


def export_cases(dataset: Dataset, fmt: str, *, actor: Actor, notes: list[str] | None = None) -> str:
    """The dataset's cases (all statuses but retired) as JSONL, CSV or a promptfoo config,
    importable again; ``notes`` collects what a promptfoo config cannot say."""
    require_perm(actor, "datasets_app.import_cases", "export cases")
    rows = (
        Case.objects.filter(dataset=dataset)
        .exclude(status=CaseStatus.RETIRED)
        .select_related("failure_class")
        .order_by("key")
    )
    cases = (
        {
            "key": c.key,
            "tier": c.tier,
            "failure_class": c.failure_class.slug,
            "risk": c.risk,
            "pinned": c.pinned,
            "tags": c.tags,
            "input": c.input,
            "expected": c.expected,
            "status": c.status,
        }
        for c in rows.iterator(chunk_size=2000)
    )
    if fmt == "jsonl":
        return export_jsonl(cases)
    if fmt == "csv":
        return export_csv(cases)
    if fmt == "promptfoo":
        text, missing = export_promptfoo(cases)
        if notes is not None:
            notes.extend(missing)
        return text
    raise ValueError(f"unknown export format {fmt!r} ({', '.join(EXPORT_FORMATS)})")
