"""Which path the current act came through (admin, API, a command, a worker), and as whom.

Set once at the edge (the middleware for web requests, each management command, the
worker) so that every audit event says where it came from without every service asking.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_via: ContextVar[str] = ContextVar("audit_via", default="")
_request: ContextVar[Any] = ContextVar("audit_request", default=None)


def current_via() -> str:
    return _via.get()


def current_user() -> Any:
    """The authenticated user of the web request being served, if any (for signal receivers)."""
    request = _request.get()
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


@contextmanager
def acting_via(via: str, request: Any = None) -> Iterator[None]:
    via_token = _via.set(via)
    request_token = _request.set(request) if request is not None else None
    try:
        yield
    finally:
        _via.reset(via_token)
        if request_token is not None:
            _request.reset(request_token)
