"""Who may see which gate, and which scopes a request carries."""

import functools
from typing import TYPE_CHECKING, Any

from django.db import connection
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


def visible_gate_sql(request: Request) -> tuple[str, list[Any]]:
    """``visible_gates(request)`` as a SQL condition on a gate row aliased ``g``, with its
    parameters, for the one raw query of a decided check (gates_app.api.bodies). The same rule,
    pinned to the queryset above for every kind of requester by tests/gates/test_fast_check_path.py.
    """
    token = deploy_token(request)
    if token is not None:
        return _gate_sql(connection.vendor, "token"), [True, token.pk]
    user = request.user
    if user.has_perm("gates_app.view_gate"):  # through the auth backends, as visible_gates asks
        return _gate_sql(connection.vendor, "all"), [True]
    return _gate_sql(connection.vendor, "member"), [True, user.pk, user.pk, user.pk]


def token_row_gate_sql() -> str:
    """``visible_gates`` of a deploy token as a SQL condition on a gate row ``g`` and the token's
    own row ``t`` in the same query (one parameter: True, for the gate's active flag)."""
    return _gate_sql(connection.vendor, "token row t")


@functools.cache
def _gate_sql(vendor: str, kind: str) -> str:
    qn, meta = connection.ops.quote_name, Gate._meta
    gate_id = f"g.{qn(meta.pk.column)}"
    active = f"g.{qn(meta.get_field('active').column)} = %s"

    def linked(m2m: Any, gate_column: str, other_column: str, other: str = "%s") -> str:
        """The gate has a row in ``m2m``'s table whose other side is ``other`` (the parameter)."""
        return (
            f"EXISTS (SELECT 1 FROM {qn(m2m.m2m_db_table())} m "
            f"WHERE m.{qn(gate_column)} = {gate_id} AND m.{qn(other_column)} = {other})"
        )

    if kind in ("token", "token row t"):  # filter(tokens=token): the token's own gates
        gates = DeployToken._meta.get_field("gates")
        # "token row t": the token is the row t of the same query, not a parameter.
        token = f"t.{qn(DeployToken._meta.pk.column)}" if kind == "token row t" else "%s"
        return f"{active} AND {linked(gates, gates.m2m_reverse_name(), gates.m2m_column_name(), token)}"
    if kind == "all":  # the view_gate permission: every active gate
        return active
    # Q(owner=user) | Q(co_owners=user) | Q(approvers=user), distinct
    owner = f"g.{qn(meta.get_field('owner').column)} = %s"
    co_owners, approvers = meta.get_field("co_owners"), meta.get_field("approvers")
    co_owned = linked(co_owners, co_owners.m2m_column_name(), co_owners.m2m_reverse_name())
    approves = linked(approvers, approvers.m2m_column_name(), approvers.m2m_reverse_name())
    return f"{active} AND ({owner} OR {co_owned} OR {approves})"
