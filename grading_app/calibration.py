"""Judge calibration: how often a rubric version's judge agrees with people and code checks.

Agreement is the share of cases where both say the same; Cohen's kappa discounts the
agreement two raters would reach by chance given how often each says "pass".
"""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from grading_app.models import Grade, HumanLabel, RubricVersion


def agreement(pairs: Sequence[tuple[bool, bool]]) -> float | None:
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else None


def cohen_kappa(pairs: Sequence[tuple[bool, bool]]) -> float | None:
    """Cohen's kappa for two binary raters; None without pairs, or when chance agreement is 1
    (both raters said the same thing every time, so kappa is undefined)."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    p_a = sum(a for a, _ in pairs) / n
    p_b = sum(b for _, b in pairs) / n
    expected = p_a * p_b + (1 - p_a) * (1 - p_b)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def _summary(pairs: list[tuple[bool, bool]]) -> dict[str, Any]:
    return {"n": len(pairs), "agreement": agreement(pairs), "kappa": cohen_kappa(pairs)}


def human_pairs(version: RubricVersion) -> list[tuple[bool, bool]]:
    """(judge passed, human passed) for every labelled grade the version's judge decided (one query)."""
    return list(
        HumanLabel.objects.filter(grade__rubric_version=version, grade__passed__isnull=False).values_list(
            "grade__passed", "passed"
        )
    )


def calibrate(version: RubricVersion) -> dict[str, Any]:
    """Agreement and kappa of the version's judge with human labels and with each code grader
    that graded the same case results (three queries)."""
    human = human_pairs(version)
    judged_grades = Grade.objects.filter(rubric_version=version, passed__isnull=False)
    judged = dict(judged_grades.values_list("case_result_id", "passed"))
    code: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    others = Grade.objects.filter(
        case_result_id__in=list(judged), rubric_version__isnull=True, passed__isnull=False
    ).values_list("case_result_id", "grader__slug", "passed")
    for result_id, slug, passed in others:
        code[slug].append((judged[result_id], passed))
    return {"human": _summary(human), "code": {slug: _summary(pairs) for slug, pairs in sorted(code.items())}}
