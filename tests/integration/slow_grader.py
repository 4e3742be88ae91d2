"""A grader kind that takes its time, so a test can kill a worker in the middle of a chunk.

Workers load it through EVALGATE_GRADER_MODULES=tests.integration.slow_grader.
"""

import time
from typing import Any

from grading_app.graders import register
from grading_app.graders.base import GradeOutcome, GraderKind, GradingInput


@register
class SlowExactMatch(GraderKind):
    key = "slow_exact_match"
    dimension = "correctness"
    description = "exact_match that sleeps 3 ms per case (tests only)."

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        time.sleep(0.003)
        passed = item.output_text.strip() == item.expected.get("answer")
        return GradeOutcome(1.0 if passed else 0.0, passed, "slow check")
