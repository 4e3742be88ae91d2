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
        # Imported judges (promptfoo's llm-rubric, say) carry each case's rubric text in one key
        # of expected: such a judge reads only the cases that have it, like a code grader.
        "expected_field": ConfigField(str, "", "Judge only cases whose expected has this key (empty: all)."),
    }

    def reads(self, expected: dict[str, Any], config: dict[str, Any]) -> bool:
        """Whether this judge grades a case with this ``expected`` at all."""
        field = config.get("expected_field") or ""
        return not field or field in expected

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        # Judging calls the network, so jobs batch it through grading_app.judging instead.
        raise NotImplementedError("llm_judge grades through grading_app.judging.run_judges")
