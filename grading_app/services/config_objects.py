"""Writes of grading configuration: graders, endpoints and targets (all with history)."""

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from datasets_app.models import FailureClass
from grading_app.models import Endpoint, Grader, Rubric, RubricVersion, Target


def _save(obj: Any, actor: AbstractBaseUser | None, reason: str) -> None:
    obj.full_clean()
    obj._history_user = actor
    obj._change_reason = reason
    obj.save()


@transaction.atomic
def save_grader(
    *,
    slug: str,
    kind: str,
    config: dict[str, Any] | None = None,
    dimension: str = "",
    failure_classes: list[FailureClass] | None = None,
    name: str = "",
    rubric: Rubric | None = None,
    rubric_version: RubricVersion | None = None,
    actor: AbstractBaseUser | None = None,
) -> Grader:
    """Create or update a grader by slug; the kind validates its config (ValidationError)."""
    grader = Grader.objects.filter(slug=slug).first() or Grader(slug=slug)
    grader.kind, grader.config, grader.dimension, grader.name = kind, config or {}, dimension, name
    grader.rubric, grader.rubric_version = rubric, rubric_version
    _save(grader, actor, "saved")
    grader.failure_classes.set(failure_classes or [])
    return grader


@transaction.atomic
def save_endpoint(*, name: str, actor: AbstractBaseUser | None = None, **fields: Any) -> Endpoint:
    """Create or update an endpoint by name (base_url, api_key_env, limits, prices)."""
    endpoint = Endpoint.objects.filter(name=name).first() or Endpoint(name=name)
    for field, value in fields.items():
        setattr(endpoint, field, value)
    _save(endpoint, actor, "saved")
    return endpoint


@transaction.atomic
def save_target(
    *,
    slug: str,
    kind: str,
    config: dict[str, Any] | None = None,
    endpoint: Endpoint | None = None,
    name: str = "",
    actor: AbstractBaseUser | None = None,
) -> Target:
    """Create or update a target by slug; its config is validated against its kind."""
    target = Target.objects.filter(slug=slug).first() or Target(slug=slug)
    target.kind, target.config, target.endpoint, target.name = kind, config or {}, endpoint, name
    _save(target, actor, "saved")
    return target
