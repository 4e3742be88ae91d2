"""The llm_judge kind: a rubric version judged by a model (see grading_app.judging)."""

from typing import Any

from grading_app.graders import register
from grading_app.graders.base import ConfigField, GradeOutcome, GraderKind, GradingInput


@register
class LlmJudge(GraderKind):
    key = "llm_judge"
    dimension = "correctness"
    description = "A judge model scores the output against the grader's rubric (signed-off versions gate)."
    needs_rubric = True
    config_fields = {
        "include_input": ConfigField(bool, True, "Show the judge the conversation."),
        "include_expected": ConfigField(bool, True, "Show the judge the case's expected keys."),
    }

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        # Judging calls the network, so jobs batch it through grading_app.judging instead.
        raise NotImplementedError("llm_judge grades through grading_app.judging.run_judges")
