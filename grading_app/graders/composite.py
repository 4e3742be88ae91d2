"""The assertion_set kind: several code checks on one case, combined the way promptfoo combines a
test's assertions (and an `assert-set`'s): a weighted average of their scores against a
threshold when there is one, else every check must pass.

Each check is a registered code kind run through its own ``evaluate()``: its kind, its config
and the ``expected`` it reads, so a check means here exactly what it means as a grader of its
own. Judges cannot take part: a judge's verdict counts only once its rubric version is signed
off (and is calibrated, cached and labelled on its own path), which a code grade cannot wait on.
"""

import dataclasses
import math
from typing import Any

from django.core.exceptions import ValidationError

from grading_app.graders import get_kind, register
from grading_app.graders.base import ConfigField, GradeOutcome, GraderKind, GradingInput

LEAF_KEYS = {"kind", "config", "expected", "weight", "binary"}
SET_KEYS = {"assertions", "threshold", "weight"}
# The one kind whose config says where to call: a case never names an endpoint, the grader does.
EMBEDDING_KIND = "embedding_similarity"


@dataclasses.dataclass(frozen=True)
class Check:
    """One code check of a set: a kind with its validated config and the expected it reads."""

    where: str
    kind: GraderKind
    config: dict[str, Any]
    expected: dict[str, Any]
    weight: float
    binary: bool  # score 1 or 0 by its verdict (promptfoo's pass/fail assertions), not the kind's


@dataclasses.dataclass(frozen=True)
class CheckSet:
    """Checks and nested sets, their threshold (None: all must pass) and the set's own weight."""

    where: str
    members: list["Check | CheckSet"]
    threshold: float | None
    weight: float


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where} must be a number")
    return float(value)


def _unknown(entry: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        allowed_keys = ", ".join(sorted(allowed))
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {allowed_keys})")


def parse_set(value: Any, where: str, config: dict[str, Any], *, top: bool = True) -> CheckSet:
    """The set written at ``where``, every member checked; ValueError naming the first bad path."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object with `assertions`")
    _unknown(value, SET_KEYS - ({"weight"} if top else set()), where)
    members = value.get("assertions")
    if not isinstance(members, list) or (top and not members):
        raise ValueError(f"{where}.assertions must be a {'non-empty ' if top else ''}list")
    threshold = value.get("threshold")
    parsed = [_member(m, f"{where}.assertions[{i}]", config) for i, m in enumerate(members)]
    return CheckSet(
        where,
        parsed,
        None if threshold is None else _number(threshold, f"{where}.threshold"),
        _number(value.get("weight", 1), f"{where}.weight"),
    )


def _member(entry: Any, where: str, config: dict[str, Any]) -> "Check | CheckSet":
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object")
    if "assertions" in entry:
        return parse_set(entry, where, config, top=False)
    _unknown(entry, LEAF_KEYS, where)
    name = entry.get("kind")
    try:
        kind = get_kind(name) if isinstance(name, str) else None
    except ValidationError:
        kind = None
    if kind is None or kind.key == AssertionSet.key:
        raise ValueError(f"{where}.kind: {name!r} is not a grader kind a set can hold")
    if kind.needs_rubric:
        raise ValueError(
            f"{where}.kind: {name} is a judge; a judge counts only on its own signed-off path, "
            "never inside a weighted score"
        )
    own = entry.get("config") or {}
    if not isinstance(own, dict):
        raise ValueError(f"{where}.config must be an object")
    if kind.key == EMBEDDING_KIND:
        own = {"endpoint": config["embedding_endpoint"], "model": config["embedding_model"], **own}
    try:
        checked = kind.validate_config(own)
    except ValidationError as exc:
        raise ValueError(f"{where}.config: {'; '.join(exc.messages)}") from None
    expected = entry.get("expected")
    if not isinstance(expected, dict) or not expected:
        raise ValueError(f"{where}.expected must be a non-empty object (the keys its kind reads)")
    binary = entry.get("binary", False)
    if not isinstance(binary, bool):
        raise ValueError(f"{where}.binary must be true or false")
    return Check(where, kind, checked, expected, _number(entry.get("weight", 1), f"{where}.weight"), binary)


def _run(check: Check, item: GradingInput) -> GradeOutcome:
    own = dataclasses.replace(item, expected=check.expected)
    try:
        outcome = check.kind.evaluate(own, check.config)
    except ValueError as exc:
        raise ValueError(f"{check.where} ({check.kind.key}): {exc}") from None
    if outcome is None:
        raise ValueError(f"{check.where} ({check.kind.key}) does not apply to its expected")
    if check.binary:
        outcome = dataclasses.replace(outcome, score=1.0 if outcome.passed else 0.0)
    # promptfoo: an assertion of weight 0 is reported but never fails its test.
    if check.weight == 0:
        outcome = dataclasses.replace(outcome, passed=True)
    return outcome


def grade_set(check_set: CheckSet, item: GradingInput) -> GradeOutcome:
    """promptfoo's rule: the score is the weighted mean of the members' scores (0 when the
    weights sum to 0); with a threshold the set passes when the score reaches it, without one
    when every member passes."""
    total = weights = 0.0
    failed: list[str] = []
    for member in check_set.members:
        outcome = grade_set(member, item) if isinstance(member, CheckSet) else _run(member, item)
        total += outcome.score * member.weight
        weights += member.weight
        if not outcome.passed:
            failed.append(f"{member.where}: {outcome.rationale}")
    score = total / weights if weights > 0 else 0.0
    if check_set.threshold is None:
        passed = not failed
        verdict = f"all {len(check_set.members)} pass" if passed else "not all pass"
    else:
        passed = score >= check_set.threshold
        verdict = f"weighted score {score:.2f} {'>=' if passed else '<'} threshold {check_set.threshold:g}"
    return GradeOutcome(score, passed, "; ".join([verdict, *failed]))


@register
class AssertionSet(GraderKind):
    key = "assertion_set"
    dimension = "correctness"
    description = (
        "Several code checks on one case, as promptfoo combines a test's assertions: "
        'expected.assertion_set is {"threshold": t, "assertions": [...]}, each assertion '
        '{"kind", "config", "expected", "weight" (1), "binary" (false: the kind\'s score; true: 1 '
        'or 0 by its verdict)} or a nested set {"assertions", "threshold", "weight"}. The score is '
        "the weighted mean of the scores; with a threshold the case passes when the score reaches "
        "it, without one when every assertion passes; an assertion of weight 0 never fails it. "
        "Judge kinds cannot take part."
    )
    config_fields = {
        "expected_field": ConfigField(str, "assertion_set", "Key of expected holding the set."),
        "embedding_endpoint": ConfigField(str, "", "Endpoint for embedding_similarity assertions."),
        "embedding_model": ConfigField(str, "", "Embedding model for embedding_similarity assertions."),
    }

    def applies(self, item: GradingInput, config: dict[str, Any]) -> bool:
        # Not the base class's probe: grading would run every check (embeddings call out).
        value = item.expected.get(config["expected_field"])
        if value is None:
            return False
        try:
            parse_set(value, f"expected.{config['expected_field']}", config)
        except ValueError:
            return False
        return True

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        key = config["expected_field"]
        value = item.expected.get(key)
        if value is None:
            return None
        return grade_set(parse_set(value, f"expected.{key}", config), item)
