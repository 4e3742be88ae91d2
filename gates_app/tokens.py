"""Bearer tokens: generated once, stored as a SHA-256 hash, compared in constant time."""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from gates_app.choices import Scope
from gates_app.models import DeployToken, Gate

TOKEN_PREFIX = "egt"
LAST_USED_GRANULARITY = timedelta(minutes=1)  # avoid a write on every API call


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def create_token(
    *,
    name: str,
    gates: list[Gate] | None = None,
    scopes: list[str] | None = None,
    user: AbstractBaseUser | None = None,
    expires_in_days: int | None = None,
    actor: AbstractBaseUser | None = None,
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
    if user is None and not gates:
        raise ValidationError({"gates": "A deploy token needs at least one gate."})
    if expires_in_days is not None and expires_in_days <= 0:
        raise ValidationError({"expires": "Expiry must be a positive number of days."})
    prefix = secrets.token_hex(4)
    secret = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    token = DeployToken.objects.create(
        name=name,
        prefix=prefix,
        secret_hash=_hash(secret),
        user=user,
        scopes=scopes,
        created_by=actor,
        expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    if gates:
        token.gates.set(gates)
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
def revoke_token(token: DeployToken, *, actor: AbstractBaseUser | None) -> DeployToken:
    """Revoke a token; it stops working at once and stays listed for the audit trail."""
    token = DeployToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
