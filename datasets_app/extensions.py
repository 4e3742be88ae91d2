"""Questions datasets_app asks of the apps built on it, answered by functions they register
when they start, so imports still flow one way (grading_app and gates_app import this app).

- ``grading_problem(case)``: why no grader would grade this case ("" when one would). A
  pinned case is audited only if some grader reads it (grading_app answers).
- ``reference_problems(case_input)``: what a case's input names that does not exist (a
  simulated user's rubric: grading_app answers), as ``path: problem`` lines.
- ``may_confirm_pinned_change(case, user)``: besides another dataset owner, who may confirm
  retiring or unpinning a pinned case (gates_app answers: an owner of a gate on its dataset).
- import plan parts (below): what an import needs beyond cases (graders, rubric drafts, gate
  rules) is checked and written by the apps that own those objects.
"""

from collections.abc import Callable
from typing import Any

_grading_checks: list[Callable[[Any], str]] = []
_pinned_confirmers: list[Callable[[Any, Any], bool]] = []
_reference_checks: list[Callable[[Any], list[str]]] = []


def register_grading_check(check: Callable[[Any], str]) -> None:
    if check not in _grading_checks:
        _grading_checks.append(check)


def register_pinned_confirmer(confirmer: Callable[[Any, Any], bool]) -> None:
    if confirmer not in _pinned_confirmers:
        _pinned_confirmers.append(confirmer)


def register_reference_check(check: Callable[[Any], list[str]]) -> None:
    if check not in _reference_checks:
        _reference_checks.append(check)


def reference_problems(case_input: Any) -> list[str]:
    return [problem for check in _reference_checks for problem in check(case_input)]


def grading_problem(case: Any) -> str:
    for check in _grading_checks:
        if problem := check(case):
            return problem
    return ""


def may_confirm_pinned_change(case: Any, user: Any) -> bool:
    return any(confirmer(case, user) for confirmer in _pinned_confirmers)


# - import plan parts: an import plan (datasets_app.importers) may need graders, rubric drafts
#   and gate rules. grading_app and gates_app register a ``check(plan, settings, actor, dataset)``
#   returning LineErrors and an ``apply(plan, settings, actor, dataset)`` returning notes of
#   what it wrote; the import service calls them in its one transaction.
_plan_parts: list[tuple[Callable[..., list[Any]], Callable[..., list[str]]]] = []


def register_plan_part(check: Callable[..., list[Any]], apply: Callable[..., list[str]]) -> None:
    if (check, apply) not in _plan_parts:
        _plan_parts.append((check, apply))


def check_plan_parts(plan: Any, settings: Any, actor: Any, dataset: Any) -> list[Any]:
    return [error for check, _apply in _plan_parts for error in check(plan, settings, actor, dataset)]


def apply_plan_parts(plan: Any, settings: Any, actor: Any, dataset: Any) -> list[str]:
    return [note for _check, apply in _plan_parts for note in apply(plan, settings, actor, dataset)]
