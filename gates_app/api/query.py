"""Query strings: each API view names the parameters it reads; anything else is a 400.

A typo (``?candiate=``) silently ignored would answer a question nobody asked; a NUL or a
lone surrogate in a value would reach the database and fail there.
"""

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from gates_app.api.parsers import string_problem


class StrictQueryParams:
    """Mixin for API views: ``query_params_allowed`` lists what the view reads."""

    query_params_allowed: tuple[str, ...] = ()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication and throttling answer first
        errors: dict[str, list[str]] = {}
        for name, values in request.query_params.lists():
            if name not in self.query_params_allowed:
                allowed = ", ".join(self.query_params_allowed) or "none"
                errors[name] = [f"Unknown query parameter (this endpoint takes: {allowed})."]
                continue
            for value in values:
                if problem := string_problem(value):
                    errors[name] = [f"Holds {problem}."]
        if errors:
            raise ValidationError(errors)
