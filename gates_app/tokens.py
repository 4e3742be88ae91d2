"""Bearer tokens: generated once, stored as a SHA-256 hash, compared in constant time.

Who may issue what (DESIGN.md section 9): a personal token acts as its user, so only that
user issues it (a superuser may issue one for someone else, and the audit log says so); a
deploy token acts on its gates, so only an owner of every one of them issues it. Whoever
issued a deploy token answers for what it writes. ``actor=None`` is the server's shell
(``manage.py create_token`` without ``--as``), trusted like a superuser and recorded as such.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit_app.choices import Action
from audit_app.services import record_event
from gates_app.choices import Scope
from gates_app.models import DeployToken, Gate

TOKEN_PREFIX = "egt"
LAST_USED_GRANULARITY = timedelta(minutes=1)  # avoid a write on every API call


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _is_superuser(actor: AbstractBaseUser | None) -> bool:
    return actor is None or bool(getattr(actor, "is_superuser", False))


def may_manage(token: DeployToken, actor: AbstractBaseUser | None) -> bool:
    """Superusers (and the shell) manage every token; users their personal tokens and the
    deploy tokens of gates they own."""
    if _is_superuser(actor):
        return True
    if token.is_personal:
        return token.user_id == actor.pk
    return token.gates.owned_by(actor).exists()


def tokens_visible_to(actor: AbstractBaseUser) -> QuerySet[DeployToken]:
    """The tokens ``actor`` may see and revoke (the admin's list)."""
    if actor.is_superuser:
        return DeployToken.objects.all()
    owned = DeployToken.objects.filter(gates__in=Gate.objects.owned_by(actor)).values("pk")
    return DeployToken.objects.filter(Q(user=actor) | Q(pk__in=owned))


def issue_refusal(
    actor: AbstractBaseUser | None, *, user: AbstractBaseUser | None, gates: list[Gate]
) -> Exception | None:
    """What refuses ``actor`` issuing this token, or None (the admin form asks first)."""
    if user is not None:
        if not user.is_active:
            return ValidationError({"user": f"{user.get_username()} is inactive."})
        if not _is_superuser(actor) and user.pk != actor.pk:
            return PermissionDenied("A personal token acts as its user: only they (or a superuser) issue it.")
        return None
    not_owned = sorted(g.slug for g in gates if not _is_superuser(actor) and not g.is_owner(actor))
    if not_owned:
        return PermissionDenied(
            f"You do not own gate(s) {', '.join(not_owned)}: only their owners issue deploy tokens."
        )
    return None


@transaction.atomic
def create_token(
    *,
    name: str,
    gates: list[Gate] | None = None,
    scopes: list[str] | None = None,
    user: AbstractBaseUser | None = None,
    expires_in_days: int | None = None,
    actor: AbstractBaseUser | None,
    note: str = "",
) -> tuple[DeployToken, str]:
    """Create a deploy token (gates + scopes) or, with ``user``, a personal token.

    Returns the token row and the secret. The secret is not stored and cannot be shown again.
    """
    scopes = list(scopes or ([] if user else [Scope.CHECKS_WRITE, Scope.CHECKS_READ]))
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown:
        raise ValidationError(
            {"scopes": f"Unknown scope(s): {', '.join(unknown)} (known: {', '.join(Scope.values)})."}
        )
    if user is not None and gates:
        raise ValidationError({"gates": "A personal token acts as its user: it names no gates."})
    if user is None and not gates:
        raise ValidationError({"gates": "A deploy token needs at least one gate."})
    if expires_in_days is not None and expires_in_days <= 0:
        raise ValidationError({"expires": "Expiry must be a positive number of days."})
    if not name.strip():
        raise ValidationError({"name": "Name the token after what will use it."})
    if refusal := issue_refusal(actor, user=user, gates=gates or []):
        raise refusal
    prefix = secrets.token_hex(4)
    secret = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    token = DeployToken.objects.create(
        name=name.strip(),
        prefix=prefix,
        secret_hash=_hash(secret),
        user=user,
        scopes=scopes,
        created_by=actor,
        note=note,
        expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    if gates:
        token.gates.set(gates)
    record_event(
        Action.TOKEN_CREATED,
        actor=actor,
        obj=token,
        reason=note,
        details={
            "token": token.identity(),
            "kind": "personal" if user else "deploy",
            "for_user": user.get_username() if user else None,
            # A token in another person's name is the case a reviewer looks for.
            "on_behalf": user is not None and (actor is None or user.pk != actor.pk),
            "gates": sorted(g.slug for g in gates or []),
            "scopes": sorted(scopes),
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return token, secret


def authenticate_secret(secret: str) -> DeployToken | None:
    """The usable token for this secret, or None. Records when it was last used."""
    parts = secret.split("_", 2)  # the random part may itself contain "_"
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    token = DeployToken.objects.usable().select_related("user").filter(prefix=parts[1]).first()
    if token is None or not hmac.compare_digest(token.secret_hash, _hash(secret)):
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_GRANULARITY:
        DeployToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


@transaction.atomic
def revoke_token(token: DeployToken, *, actor: AbstractBaseUser | None, reason: str) -> DeployToken:
    """Revoke a token; it stops working at once and stays listed for the audit trail."""
    token = DeployToken.objects.select_for_update().get(pk=token.pk)
    if not may_manage(token, actor):
        raise PermissionDenied("Only the token's user, an owner of its gates or a superuser revokes it.")
    if not reason or not reason.strip():
        raise ValidationError({"reason": "Say why the token is revoked."})
    if token.revoked_at is not None:
        raise ValidationError(f"Token {token.name} is already revoked.")
    token.revoked_at = timezone.now()
    token.revoked_by = actor
    token.revoke_reason = reason.strip()
    token.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
    record_event(
        Action.TOKEN_REVOKED,
        actor=actor,
        obj=token,
        reason=token.revoke_reason,
        details={"token": token.identity()},
    )
    return token
