"""Bearer-token authentication against hashed DeployToken rows (never plaintext authtoken)."""

from typing import Any

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from gates_app.api import memo
from gates_app.models import DeployToken
from gates_app.tokens import authenticate_secret_with


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <token>``.

    A personal token authenticates as its user; a deploy token authenticates as no user
    (request.user is anonymous) and carries its gates and scopes on ``request.auth``.
    """

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, DeployToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use 'Bearer <token>'.")
        try:
            secret = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The token contains invalid characters.") from None
        # A view may ask for columns of its own in the token's query (one round trip, not two).
        view = (getattr(request, "parser_context", None) or {}).get("view")
        lookahead = view.auth_lookahead() if hasattr(view, "auth_lookahead") else None
        if lookahead is not None and memo.enabled():
            token, row = memo.authenticate(secret, lookahead)
        else:
            token, row = authenticate_secret_with(secret, lookahead)
        if lookahead is not None:
            view.auth_lookahead_row = row
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        if token.is_personal and not token.user.is_active:
            raise exceptions.AuthenticationFailed("The token's user is inactive.")
        return (token.user if token.is_personal else AnonymousUser()), token

    def authenticate_header(self, request: Request) -> str:
        # Presence of this header makes DRF answer 401 (not 403) without credentials.
        return f'{self.keyword} realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents the bearer scheme in the OpenAPI schema (drf-spectacular finds it by class)."""

    target_class = "gates_app.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A deploy token (gates + scopes) or a personal token (acts as its user).",
        }
