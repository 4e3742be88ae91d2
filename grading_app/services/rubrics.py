"""Rubric versions and their sign-off: draft -> submitted -> approved | rejected -> retired.

A submitted version is immutable. A rubric has an owner and may have co-owners (like a
CODEOWNERS entry): any owner other than a version's author signs it off, never the author.
Every state change is recorded with who, when and a note (and an audit event), in the same
transaction.
"""

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max

from audit_app.choices import Action
from audit_app.services import record_event
from grading_app.alignment import content_digest
from grading_app.choices import AlignmentStatus, RubricState
from grading_app.models import AlignmentProposal, Endpoint, Rubric, RubricVersion, RubricVersionEvent

EDITABLE_FIELDS = ("criteria", "scale", "pass_threshold", "endpoint", "model", "prompt_template", "few_shot")


@transaction.atomic
def save_rubric(
    *,
    slug: str,
    name: str,
    owner: AbstractBaseUser,
    description: str = "",
    co_owners: list[AbstractBaseUser] | None = None,
    actor: AbstractBaseUser | None = None,
) -> Rubric:
    """Create or update a rubric (its name and owners; versions have their own workflow).

    Only an owner (or a superuser) changes an existing rubric: who signs off is theirs to say.
    """
    rubric = Rubric.objects.select_for_update().filter(slug=slug).first()
    if (
        rubric is not None
        and actor is not None
        and not actor.is_superuser
        and actor.pk not in rubric.owner_ids()
    ):
        raise PermissionDenied("Only the rubric's owners change it.")
    rubric = rubric or Rubric(slug=slug)
    rubric.name, rubric.owner, rubric.description = name, owner, description
    rubric.full_clean()
    rubric._history_user = actor
    rubric.save()
    if co_owners is not None:
        rubric.co_owners.set(co_owners)
    return rubric


def signers(version: RubricVersion) -> list[AbstractBaseUser]:
    """Who could sign ``version`` off: the rubric's owners other than its author."""
    rubric = version.rubric
    owners = [rubric.owner, *rubric.co_owners.all()]
    return sorted(
        {u.pk: u for u in owners if u.pk != version.author_id}.values(), key=lambda u: u.get_username()
    )


def transition_refusal(version: RubricVersion, actor: AbstractBaseUser, to: str) -> str:
    """Why ``actor`` may not move ``version`` to state ``to`` now ("" when they may)."""
    owners = version.rubric.owner_ids()
    if to == RubricState.SUBMITTED:
        if version.state != RubricState.DRAFT:
            return "Only drafts are submitted."
        return (
            ""
            if actor.pk == version.author_id or actor.pk in owners
            else "Only the author or an owner submits."
        )
    if actor.pk not in owners:
        return "Only the rubric's owners decide its versions."
    if to in (RubricState.APPROVED, RubricState.REJECTED) and version.state != RubricState.SUBMITTED:
        return "Only submitted versions are approved or rejected."
    if to == RubricState.APPROVED and actor.pk == version.author_id:
        return "Nobody signs off a version they wrote."
    if to == RubricState.APPROVED and (unmeasured := alignment_refusal(version)):
        return unmeasured
    if to == RubricState.RETIRED and version.state not in (RubricState.APPROVED, RubricState.REJECTED):
        return "Only approved or rejected versions are retired."
    return ""


def alignment_refusal(version: RubricVersion) -> str:
    """Why a version proposed from disagreeing labels cannot be signed off yet ("" when it can):
    its agreement with people is measured first, on labels it was not built from, and on the
    content being signed off."""
    proposal = AlignmentProposal.objects.filter(proposed=version).first()
    if proposal is None:
        return ""
    if proposal.status != AlignmentStatus.MEASURED:
        return (
            "It was proposed from disagreeing labels and its agreement on held-out labels is not "
            f"measured yet ({proposal.get_status_display().lower()})."
        )
    if proposal.measured_content != content_digest(version):
        return "It changed after its agreement on held-out labels was measured: measure it again."
    return ""


def sign_off_blocker(version: RubricVersion) -> str:
    """Why nobody can sign ``version`` off ("" when someone can): its author is the only owner."""
    if version.state not in (RubricState.DRAFT, RubricState.SUBMITTED) or signers(version):
        return ""
    return (
        f"Nobody can sign this version off: its author {version.author} is the rubric's only owner, "
        "and nobody approves their own version. Add a co-owner to the rubric."
    )


AUDIT_ACTIONS = {
    RubricState.SUBMITTED: Action.RUBRIC_VERSION_SUBMITTED,
    RubricState.APPROVED: Action.RUBRIC_VERSION_APPROVED,
    RubricState.REJECTED: Action.RUBRIC_VERSION_REJECTED,
    RubricState.RETIRED: Action.RUBRIC_VERSION_RETIRED,
}


def _record(version: RubricVersion, from_state: str, actor: AbstractBaseUser, note: str) -> None:
    RubricVersionEvent.objects.create(
        version=version, from_state=from_state, to_state=version.state, actor=actor, note=note
    )
    if action := AUDIT_ACTIONS.get(version.state):
        record_event(
            action,
            actor=actor,
            obj=version,
            reason=note,
            details={
                "rubric": version.rubric.slug,
                "number": version.number,
                "from": from_state,
                "author": version.author_id,
            },
        )


@transaction.atomic
def create_rubric_version(
    rubric: Rubric,
    *,
    actor: AbstractBaseUser,
    criteria: str,
    endpoint: Endpoint,
    model: str,
    note: str = "",
    **fields: Any,
) -> RubricVersion:
    """A new draft version authored by ``actor``, numbered after the rubric's last one."""
    rubric = Rubric.objects.select_for_update().get(pk=rubric.pk)  # serialise numbering
    number = (rubric.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = RubricVersion(
        rubric=rubric,
        number=number,
        criteria=criteria,
        endpoint=endpoint,
        model=model,
        author=actor,
        **fields,
    )
    version.full_clean()
    version.save()
    _record(version, "", actor, note or "created")
    return version


def _locked(version: RubricVersion) -> RubricVersion:
    return RubricVersion.objects.select_for_update().select_related("rubric").get(pk=version.pk)


@transaction.atomic
def edit_rubric_version(version: RubricVersion, *, actor: AbstractBaseUser, **changes: Any) -> RubricVersion:
    """Change a draft. Submitted and later versions are immutable: write a new version."""
    version = _locked(version)
    if version.state != RubricState.DRAFT:
        raise ValidationError(
            f"Version {version.number} is {version.get_state_display().lower()} and can no longer change; "
            "create a new version instead."
        )
    if actor.pk != version.author_id and actor.pk not in version.rubric.owner_ids():
        raise PermissionDenied("Only the author or the rubric's owners can edit a draft version.")
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(f"Not editable: {', '.join(sorted(unknown))}.")
    for field, value in changes.items():
        setattr(version, field, value)
    version.full_clean()
    version.save()
    return version


def _transition(
    version: RubricVersion, *, actor: AbstractBaseUser, allowed_from: tuple[str, ...], to: str, note: str
) -> RubricVersion:
    version = _locked(version)
    if version.state not in allowed_from:
        raise ValidationError(
            f"Version {version.number} is {version.get_state_display().lower()}; cannot move it to {to}."
        )
    previous = version.state
    version.state = to
    version.save(update_fields=["state"])
    _record(version, previous, actor, note)
    return version


def _require_owner(version: RubricVersion, actor: AbstractBaseUser, doing: str) -> None:
    if actor.pk not in version.rubric.owner_ids():
        raise PermissionDenied(f"Only the rubric's owners can {doing}.")


@transaction.atomic
def submit_rubric_version(
    version: RubricVersion, *, actor: AbstractBaseUser, note: str = ""
) -> RubricVersion:
    """Freeze a draft and ask the rubric's owners to sign it off."""
    if actor.pk != version.author_id and actor.pk not in version.rubric.owner_ids():
        raise PermissionDenied("Only the author or the rubric's owners can submit a version.")
    return _transition(
        version,
        actor=actor,
        allowed_from=(RubricState.DRAFT,),
        to=RubricState.SUBMITTED,
        note=note or "submitted for sign-off",
    )


@transaction.atomic
def approve_rubric_version(
    version: RubricVersion, *, actor: AbstractBaseUser, note: str = ""
) -> RubricVersion:
    """An owner of the rubric signs off a submitted version written by someone else."""
    _require_owner(version, actor, "approve a version")
    if actor.pk == version.author_id:
        others = ", ".join(u.get_username() for u in signers(version)) or "nobody yet: add a co-owner"
        raise PermissionDenied(f"You wrote this version: someone else must sign it off ({others}).")
    if unmeasured := alignment_refusal(version):
        raise ValidationError(unmeasured)
    return _transition(
        version,
        actor=actor,
        allowed_from=(RubricState.SUBMITTED,),
        to=RubricState.APPROVED,
        note=note or "approved",
    )


@transaction.atomic
def reject_rubric_version(version: RubricVersion, *, actor: AbstractBaseUser, note: str) -> RubricVersion:
    """An owner of the rubric sends a submitted version back, saying why."""
    _require_owner(version, actor, "reject a version")
    if not note.strip():
        raise ValidationError({"note": "Say why the version is rejected."})
    return _transition(
        version, actor=actor, allowed_from=(RubricState.SUBMITTED,), to=RubricState.REJECTED, note=note
    )


@transaction.atomic
def retire_rubric_version(
    version: RubricVersion, *, actor: AbstractBaseUser, note: str = ""
) -> RubricVersion:
    """Take a decided version out of use (judge graders move to the latest approved one)."""
    _require_owner(version, actor, "retire a version")
    return _transition(
        version,
        actor=actor,
        allowed_from=(RubricState.APPROVED, RubricState.REJECTED),
        to=RubricState.RETIRED,
        note=note or "retired",
    )
