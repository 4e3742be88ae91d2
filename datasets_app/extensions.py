"""Questions datasets_app asks of the apps built on it, answered by functions they register
when they start, so imports still flow one way (grading_app and gates_app import this app).

- ``grading_problem(case)``: why no grader would grade this case ("" when one would). A
  pinned case is audited only if some grader reads it (grading_app answers).
- ``may_confirm_pinned_change(case, user)``: besides another dataset owner, who may confirm
  retiring or unpinning a pinned case (gates_app answers: an owner of a gate on its dataset).
"""

from collections.abc import Callable
from typing import Any

_grading_checks: list[Callable[[Any], str]] = []
_pinned_confirmers: list[Callable[[Any, Any], bool]] = []


def register_grading_check(check: Callable[[Any], str]) -> None:
    if check not in _grading_checks:
        _grading_checks.append(check)


def register_pinned_confirmer(confirmer: Callable[[Any, Any], bool]) -> None:
    if confirmer not in _pinned_confirmers:
        _pinned_confirmers.append(confirmer)


def grading_problem(case: Any) -> str:
    for check in _grading_checks:
        if problem := check(case):
            return problem
    return ""


def may_confirm_pinned_change(case: Any, user: Any) -> bool:
    return any(confirmer(case, user) for confirmer in _pinned_confirmers)
