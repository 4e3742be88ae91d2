"""The graders and judge rubric drafts an import plan needs (datasets_app.importers), checked
and written for the import service through datasets_app.extensions.

A grader is reused when one with the same kind and config exists (under the plan's slug or
any other); otherwise it is created, which takes the permission to add graders. A rubric
arrives as a *draft* version on the judge endpoint the importer names: it decides nothing
until an owner of the rubric other than its author signs it off.
"""

import dataclasses
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from datasets_app.conversations import conversation_of
from datasets_app.importers import GraderSpec, ImportPlan, LineError, RubricSpec
from grading_app import graders, services
from grading_app.choices import RubricState
from grading_app.models import Endpoint, Grader, Rubric, RubricVersion


def _problem(field: str, message: str) -> LineError:
    return LineError(0, field, message, unit="")


def _config(spec: GraderSpec) -> dict[str, Any]:
    return graders.get_kind(spec.kind).validate_config(spec.config)


def _embeds(spec: GraderSpec) -> bool:
    """Whether the grader compares embeddings: itself, or similarity checks inside a set."""
    return spec.kind == "embedding_similarity" or (
        spec.kind == "assertion_set" and "embedding_model" in spec.config
    )


def _effective(spec: GraderSpec, settings: Any) -> GraderSpec:
    """The grader as it will be saved: embedding similarity on the endpoint and model the
    importer names (promptfoo's `similar` says neither)."""
    if not _embeds(spec):
        return spec
    prefix = "embedding_" if spec.kind == "assertion_set" else ""
    config = {
        **spec.config,
        f"{prefix}endpoint": settings.embedding_endpoint or "",
        f"{prefix}model": settings.embedding_model or "",
    }
    return dataclasses.replace(spec, config=config)


def _existing(spec: GraderSpec) -> Grader | None:
    """An active grader that already checks what ``spec`` would, or None."""
    config = _config(spec)
    candidates = Grader.objects.filter(kind=spec.kind, active=True).select_related("rubric")
    for grader in candidates:
        rubric_slug = grader.rubric.slug if grader.rubric_id else None
        if grader.config == config and rubric_slug == spec.rubric and not grader.failure_classes.exists():
            return grader
    return None


def _may(actor: Any, perm: str) -> bool:
    return actor is None or actor.has_perm(perm)


def check_plan(plan: ImportPlan, settings: Any, actor: Any, dataset: Any) -> list[LineError]:
    problems: list[LineError] = []
    for spec in (_effective(s, settings) for s in plan.graders):
        if _embeds(spec) and not (settings.embedding_endpoint and settings.embedding_model):
            problems.append(
                _problem(
                    "graders",
                    "similarity assertions compare embeddings: give "
                    "--embedding-endpoint and --embedding-model",
                )
            )
            continue
        if _embeds(spec) and not Endpoint.objects.filter(name=settings.embedding_endpoint).exists():
            # Found now, not as a grade error on every case of the first run.
            problems.append(_problem("graders", f"no endpoint named {settings.embedding_endpoint!r}"))
            continue
        try:
            _config(spec)
        except ValidationError as exc:
            problems.append(_problem("graders", f"{spec.slug}: {'; '.join(exc.messages)}"))
            continue
        taken = Grader.objects.filter(slug=spec.slug).first()
        if _existing(spec) is not None:
            continue
        if taken is not None:
            problems.append(
                _problem(
                    "graders",
                    f"a grader {spec.slug!r} exists with another kind or config; "
                    "rename it or give it this one's",
                )
            )
        elif not _may(actor, "grading_app.add_grader"):
            problems.append(
                _problem(
                    "graders",
                    f"the cases need a grader {spec.slug!r} ({spec.kind}) and you may "
                    "not add graders: ask a rubric owner to import them, or to add it first",
                )
            )
    if plan.rubrics:
        problems += _check_rubrics(plan.rubrics, settings, actor)
    return problems + _check_personas(plan)


def _check_personas(plan: ImportPlan) -> list[LineError]:
    """Each simulated user the cases name must be a rubric (its sign-off is checked when played)."""
    named = []
    for spec in plan.specs:
        conversation = conversation_of(spec.input)
        if conversation is not None and conversation.simulated:
            named.append((spec.line, conversation.persona))
    if not named:
        return []
    known = set(Rubric.objects.filter(slug__in={slug for _, slug in named}).values_list("slug", flat=True))
    return [
        LineError(line, "input", f"the simulated user's rubric {slug!r} does not exist; create it first")
        for line, slug in named
        if slug not in known
    ]


def _check_rubrics(rubrics: list[RubricSpec], settings: Any, actor: Any) -> list[LineError]:
    names = ", ".join(spec.slug for spec in rubrics)
    if actor is None:
        return [_problem("rubrics", f"judge rubrics ({names}) need an author: import with --as USERNAME")]
    if not settings.judge_endpoint or not settings.judge_model:
        return [
            _problem(
                "rubrics",
                f"judge assertions need a judge for their rubric drafts ({names}): give "
                "--judge-endpoint and --judge-model",
            )
        ]
    problems = []
    if not Endpoint.objects.filter(name=settings.judge_endpoint).exists():
        problems.append(_problem("rubrics", f"no endpoint named {settings.judge_endpoint!r}"))
    if settings.rubric_owner and not get_user_model().objects.filter(username=settings.rubric_owner).exists():
        problems.append(_problem("rubrics", f"no user named {settings.rubric_owner!r} to own the rubrics"))
    for spec in rubrics:
        rubric = Rubric.objects.filter(slug=spec.slug).first()
        if rubric is None and not _may(actor, "grading_app.add_rubric"):
            problems.append(
                _problem(
                    "rubrics",
                    f"the cases need a rubric {spec.slug!r} and you may not add "
                    "rubrics: ask a rubric owner to import them",
                )
            )
        elif (
            rubric is not None
            and _version(rubric, spec, settings) is None
            and not _may(actor, "grading_app.add_rubricversion")
        ):
            problems.append(
                _problem(
                    "rubrics",
                    f"rubric {spec.slug!r} needs a new draft version and you may not add rubric versions",
                )
            )
    return problems


def _version(rubric: Rubric, spec: RubricSpec, settings: Any) -> RubricVersion | None:
    """A live version of ``rubric`` saying what ``spec`` says (on the same judge), if any."""
    return (
        RubricVersion.objects.filter(
            rubric=rubric,
            criteria=spec.criteria,
            pass_threshold=spec.pass_threshold,
            model=settings.judge_model,
            endpoint__name=settings.judge_endpoint,
        )
        .exclude(state__in=[RubricState.RETIRED, RubricState.REJECTED])
        .first()
    )


def apply_plan(plan: ImportPlan, settings: Any, actor: Any, dataset: Any) -> list[str]:
    notes = []
    for spec in plan.rubrics:
        rubric = Rubric.objects.filter(slug=spec.slug).first()
        if rubric is None:
            owner = (
                get_user_model().objects.get(username=settings.rubric_owner)
                if settings.rubric_owner
                else actor
            )
            rubric = services.save_rubric(
                slug=spec.slug,
                name=spec.name,
                owner=owner,
                actor=actor,
                description=f"Imported into {dataset.slug}.",
            )
            notes.append(f"rubric {spec.slug} (owner {owner.get_username()})")
        if _version(rubric, spec, settings) is None:
            version = services.create_rubric_version(
                rubric,
                actor=actor,
                criteria=spec.criteria,
                endpoint=Endpoint.objects.get(name=settings.judge_endpoint),
                model=settings.judge_model,
                pass_threshold=spec.pass_threshold,
                scale=spec.scale,
                note=f"imported into {dataset.slug}: a draft until an owner signs it off",
            )
            notes.append(f"rubric {spec.slug} v{version.number} (draft)")
    for spec in (_effective(s, settings) for s in plan.graders):
        if _existing(spec) is not None:
            continue
        rubric = Rubric.objects.get(slug=spec.rubric) if spec.rubric else None
        services.save_grader(
            slug=spec.slug,
            kind=spec.kind,
            config=_config(spec),
            rubric=rubric,
            actor=actor,
            name=f"{spec.slug} (imported)",
        )
        notes.append(f"grader {spec.slug}")
    return notes
