"""Bulk import and export of cases: validate every line first, then write once."""

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from audit_app.choices import Action
from audit_app.services import record_event
from datasets_app.choices import CaseSource, CaseStatus, Tier
from datasets_app.importers import CaseSpec, ImportFailed, LineError, export_csv, export_jsonl
from datasets_app.models import UNCLASSIFIED, Case, Dataset, FailureClass
from datasets_app.services.cases import Actor, require_perm, save_failure_class

KEY_BATCH = 10_000


def _unclassified() -> FailureClass:
    existing = FailureClass.objects.filter(slug=UNCLASSIFIED).first()
    return existing or save_failure_class(
        slug=UNCLASSIFIED,
        name="Unclassified (needs triage)",
        description="Imported without a failure class. Move each case to the class it probes.",
    )


def _check(
    dataset: Dataset, specs: list[CaseSpec], classes: dict[str, FailureClass], actor: Actor
) -> list[LineError]:
    errors = []
    keys = [s.key for s in specs]
    existing: set[str] = set()
    for start in range(0, len(keys), KEY_BATCH):  # SQLite caps the parameters of one query
        batch = keys[start : start + KEY_BATCH]
        existing |= set(Case.objects.filter(dataset=dataset, key__in=batch).values_list("key", flat=True))
    may_activate = actor is None or actor.has_perm("datasets_app.audit_case")
    for spec in specs:
        if spec.key in existing:
            errors.append(
                LineError(spec.line, "key", f"a case {spec.key!r} already exists in {dataset.slug}")
            )
        if spec.failure_class and spec.failure_class not in classes:
            errors.append(
                LineError(spec.line, "failure_class", f"unknown failure class {spec.failure_class!r}")
            )
        if spec.status == CaseStatus.ACTIVE and spec.tier != Tier.TRUSTED and not may_activate:
            errors.append(LineError(spec.line, "status", "only reviewers may import active cases"))
    return errors


def imported_status(spec: CaseSpec) -> str:
    """Draft unless the file says otherwise. A trusted case the file calls active arrives in
    review: its audit must come from a second person, not from a file (so an exported
    dataset imports again, with its trusted cases waiting for that audit)."""
    if spec.status == CaseStatus.ACTIVE and spec.tier == Tier.TRUSTED:
        return CaseStatus.IN_REVIEW
    return spec.status or CaseStatus.DRAFT


def check_import(dataset: Dataset, specs: list[CaseSpec], *, actor: Actor) -> list[LineError]:
    """Every conflict of parsed cases with the database, without writing (for previews)."""
    if not specs:
        return [LineError(0, "file", "the file has no cases")]
    slugs = {s.failure_class for s in specs if s.failure_class}
    classes = {fc.slug: fc for fc in FailureClass.objects.filter(slug__in=slugs)}
    return _check(dataset, specs, classes, actor)


@transaction.atomic
def import_cases(
    dataset: Dataset,
    specs: list[CaseSpec],
    *,
    actor: Actor,
    failure_class: FailureClass | None = None,
    contributor: AbstractBaseUser | None = None,
    source_name: str = "",
) -> list[Case]:
    """Write parsed cases into ``dataset``, all or nothing, with one history row each.

    The cases are contributed by ``actor`` (or ``contributor``: the issuer of the token they
    came through), so that person can never audit them into trusted. Lines without a failure
    class take ``failure_class``, else the ``unclassified`` class, which the admin flags for
    triage. Raises ImportFailed listing every line in conflict with the database (existing
    keys, unknown failure classes, statuses not allowed).
    """
    require_perm(actor, "datasets_app.import_cases", "import cases")
    errors = check_import(dataset, specs, actor=actor)
    if errors:
        raise ImportFailed(errors)
    classes = {fc.slug: fc for fc in FailureClass.objects.filter(slug__in={s.failure_class for s in specs})}
    fallback = failure_class
    if fallback is None and any(not s.failure_class for s in specs):
        fallback = _unclassified()
    now = timezone.now()
    cases = [
        Case(
            dataset=dataset,
            key=s.key,
            tier=s.tier,
            status=imported_status(s),
            failure_class=classes[s.failure_class] if s.failure_class else fallback,
            risk=s.risk,
            pinned=s.pinned,
            tags=s.tags,
            input=s.input,
            expected=s.expected,
            source=CaseSource.IMPORTED,
            contributed_by=contributor or actor,
            # Importing a case as active is the importer's audit (_check allowed it): record it.
            audited_by=actor if imported_status(s) == CaseStatus.ACTIVE else None,
            audited_at=now if imported_status(s) == CaseStatus.ACTIVE else None,
        )
        for s in specs
    ]
    created = bulk_create_with_history(
        cases, Case, batch_size=1000, default_user=actor, default_change_reason="imported"
    )
    record_event(
        Action.CASES_IMPORTED,
        actor=actor,
        obj=dataset,
        details={
            "cases": len(created),
            "keys": [c.key for c in created[:50]],
            "contributed_by": (contributor or actor).pk if (contributor or actor) else None,
            "source": source_name,
            "active": sum(1 for c in created if c.status == CaseStatus.ACTIVE),
        },
    )
    return created


def export_cases(dataset: Dataset, fmt: str, *, actor: Actor) -> str:
    """The dataset's cases (all statuses but retired) as JSONL or CSV text, importable again."""
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
    raise ValueError(f"unknown export format {fmt!r} (jsonl or csv)")
