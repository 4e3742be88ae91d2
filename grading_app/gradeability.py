"""Whether any active grader would grade a case: asked before a pinned case is audited, since a
pinned case no grader reads could never fail (datasets_app.extensions)."""

from typing import Any

from datasets_app import extensions
from datasets_app.conversations import conversation_of
from grading_app import graders
from grading_app.models import Grader, Rubric
from grading_app.services.runs import rubric_version_for


def applying_graders(case: Any) -> list[str]:
    """Slugs of the active graders that would grade ``case`` as it is now."""
    probe = graders.GradingInput(case_input=case.input, expected=case.expected or {}, output="")
    found = []
    for grader in Grader.objects.filter(active=True).prefetch_related("failure_classes"):
        classes = {fc.pk for fc in grader.failure_classes.all()}
        if classes and case.failure_class_id not in classes:
            continue
        kind = graders.get_kind(grader.kind)
        if kind.needs_rubric:
            # A judge reads every case it is given (or those with its expected key).
            config = kind.validate_config(grader.config)
            applies = rubric_version_for(grader) is not None and kind.reads(case.expected or {}, config)
        else:
            applies = kind.applies(probe, kind.validate_config(grader.config))
        if applies:
            found.append(grader.slug)
    return found


def grading_problem(case: Any) -> str:
    if applying_graders(case):
        return ""
    keys = ", ".join(sorted(case.expected or {})) or "none"
    return (
        f"no active grader applies to case {case.key} (its failure class and expected keys: {keys}); "
        "give it an expectation a grader reads (e.g. expected.answer, contains, must_refuse, tools) "
        "or a grader for its failure class"
    )


def persona_problems(case_input: Any) -> list[str]:
    """A simulated user names a rubric that must exist (whether it has an approved version is
    asked when the case is played): the form, the API, imports and apply_config agree."""
    conversation = conversation_of(case_input)
    if conversation is None or not conversation.simulated:
        return []
    if Rubric.objects.filter(slug=conversation.persona).exists():
        return []
    return [
        f"input.simulated_user.rubric: no rubric {conversation.persona!r} (create the persona's rubric first)"
    ]


def register_with_datasets() -> None:
    extensions.register_grading_check(grading_problem)
    extensions.register_reference_check(persona_problems)
