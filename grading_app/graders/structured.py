"""Code graders on structured output: is it JSON at all (format compliance)."""

import json
from typing import Any

from grading_app.graders import register
from grading_app.graders.base import ConfigField, GradeOutcome, GraderKind, GradingInput


@register
class JsonValid(GraderKind):
    key = "json_valid"
    dimension = "format"
    description = "The output is valid JSON (optionally: an object). Applies to every case in scope."
    config_fields = {
        "require_object": ConfigField(bool, False, "Only a JSON object counts."),
    }

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        if item.output is None:
            return GradeOutcome(0.0, False, "no output")
        value = item.output
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                return GradeOutcome(0.0, False, f"not valid JSON: {exc}")
        if config["require_object"] and not isinstance(value, dict):
            return GradeOutcome(0.0, False, f"JSON is a {type(value).__name__}, not an object")
        return GradeOutcome(1.0, True, "valid JSON")
