"""Shared helpers for the grader-kind tests: build an input, grade it, catch a config error."""

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from grading_app.graders import GradeOutcome, get_kind
from grading_app.graders.base import GradingInput


def grade(
    kind: str,
    output: Any,
    config: dict[str, Any] | None = None,
    *,
    trace: list[dict[str, Any]] | None = None,
    metrics: dict[str, Any] | None = None,
    **expected: Any,
) -> GradeOutcome | None:
    """Grade one output the way a run does: config validated first, then a pure grade()."""
    grader = get_kind(kind)
    item = GradingInput(
        case_input={}, expected=expected, output=output, trace=trace or [], metrics=metrics or {}
    )
    return grader.grade(item, grader.validate_config(config))


def config_error(kind: str, config: Any) -> str:
    """The message of the ValidationError a bad config raises (it must name the key)."""
    with pytest.raises(ValidationError) as excinfo:
        get_kind(kind).validate_config(config)
    return excinfo.value.message_dict["config"][0]
