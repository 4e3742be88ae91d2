"""Who may see which gate, and which scopes a request carries."""

from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet
from rest_framework import exceptions, permissions
from rest_framework.request import Request

if TYPE_CHECKING:  # rest_framework.views imports this module through its settings
    from rest_framework.views import APIView

from gates_app.models import DeployToken, Gate


def deploy_token(request: Request) -> DeployToken | None:
    """The deploy token behind the request, or None for users (personal token, session)."""
    auth = request.auth
    return auth if isinstance(auth, DeployToken) and not auth.is_personal else None


class IsTokenOrUser(permissions.BasePermission):
    """A valid deploy token, or an authenticated user (personal token or admin session)."""

    def has_permission(self, request: Request, view: "APIView") -> bool:
        return deploy_token(request) is not None or bool(request.user and request.user.is_authenticated)


def require_scope(request: Request, *scopes: str) -> None:
    """A deploy token must carry one of ``scopes``; users are governed by their permissions."""
    token = deploy_token(request)
    if token is not None and not any(token.has_scope(scope) for scope in scopes):
        raise exceptions.PermissionDenied(f"This token lacks the scope {' or '.join(scopes)}.")


def visible_gates(request: Request) -> QuerySet[Gate]:
    """Gates the requester may see: a deploy token's own gates; a user's by permission or role.

    Anything outside this set answers 404, so a token cannot learn other gates exist.
    """
    token = deploy_token(request)
    gates = Gate.objects.filter(active=True)
    if token is not None:
        return gates.filter(tokens=token)
    user = request.user
    if user.has_perm("gates_app.view_gate"):
        return gates
    return gates.filter(Q(owner=user) | Q(co_owners=user) | Q(approvers=user)).distinct()
