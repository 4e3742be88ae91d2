"""Judge alignment, the pure part: people's verdicts, the build / held-out split, few-shot
examples from disagreements, and agreement on the held-out labels. No database writes.

Where reviewers' labels disagree with a judge, a new draft version of the rubric shows the
judge those cases as examples. Whether that helps is measured on other labelled cases, held
out when the draft is proposed, so a version is never credited for agreeing on the very
cases it was shown.
"""

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from grading_app.calibration import agreement, cohen_kappa
from grading_app.models import RubricVersion

HOLD_OUT_SHARE = 0.3  # of each kind of labelled case (agreeing, disagreeing)
MIN_HELD_OUT = 4
MAX_EXAMPLES = 8
EXAMPLE_CHARS = 1500  # of an input or output shown in an example


@dataclass(frozen=True)
class Labelled:
    """A judged grade and what people said of it."""

    grade_id: int
    judge_passed: bool
    human_passed: bool
    human_score: float | None
    notes: tuple[str, ...]
    case_input: Any
    output: Any

    @property
    def disagrees(self) -> bool:
        return self.judge_passed != self.human_passed


def human_verdicts(
    labels: Iterable[tuple[int, bool, float | None, str]],
) -> dict[int, tuple[bool, float | None, tuple[str, ...]]]:
    """People's verdict per grade from (grade id, passed, score, note) labels: the majority of its
    reviewers (a tie is no verdict), the mean of their scores, their notes."""
    by_grade: dict[int, list[tuple[bool, float | None, str]]] = {}
    for grade_id, passed, score, note in labels:
        by_grade.setdefault(grade_id, []).append((passed, score, note))
    verdicts = {}
    for grade_id, votes in by_grade.items():
        passes = sum(passed for passed, _, _ in votes)
        if passes * 2 == len(votes):
            continue  # reviewers split evenly: people have not decided this case
        scores = [s for _, s, _ in votes if s is not None]
        verdicts[grade_id] = (
            passes * 2 > len(votes),
            sum(scores) / len(scores) if scores else None,
            tuple(note for _, _, note in votes if note),
        )
    return verdicts


def _rank(version_id: int, grade_id: int) -> str:
    # A stable order that does not follow ids or dates: the split is the same every time it
    # is computed for this version, and a held-out case is not simply "the newest".
    return hashlib.sha256(f"alignment:{version_id}:{grade_id}".encode()).hexdigest()


def split(
    version_id: int, labelled: list[Labelled], share: float = HOLD_OUT_SHARE
) -> tuple[list[Labelled], list[Labelled]]:
    """(build, held out): ``share`` of the agreeing and of the disagreeing cases held out, so the
    measurement sees both kinds; the two never overlap."""
    build: list[Labelled] = []
    held: list[Labelled] = []
    for kind in (True, False):
        group = sorted(
            (x for x in labelled if x.disagrees is kind), key=lambda x: _rank(version_id, x.grade_id)
        )
        cut = math.ceil(len(group) * share) if len(group) > 1 else 0
        held += group[:cut]
        build += group[cut:]
    return build, held


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + " [...]"


def examples(version_id: int, build: list[Labelled], limit: int = MAX_EXAMPLES) -> list[dict[str, Any]]:
    """Few-shot examples from the build set's disagreements: what people decided, and why."""
    chosen = sorted((x for x in build if x.disagrees), key=lambda x: _rank(version_id, x.grade_id))[:limit]
    shown = []
    for x in chosen:
        verdict = "a pass" if x.human_passed else "a fail"
        why = f"People reviewing this answer judged it {verdict}"
        why += f": {' / '.join(x.notes)}" if x.notes else "."
        shown.append(
            {
                "input": _shown(x.case_input),
                "output": _shown(x.output),
                "score": x.human_score if x.human_score is not None else float(x.human_passed),
                "passed": x.human_passed,
                "why": why,
            }
        )
    return shown


def content_digest(version: RubricVersion) -> str:
    """What a sign-off covers, as a digest: a measurement holds only for this exact content."""
    content = {name: getattr(version, name) for name in RubricVersion.CONTENT_FIELDS}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def measure(
    human: dict[int, bool], source: dict[int, bool | None], proposed: dict[int, bool | None]
) -> dict[str, Any]:
    """Agreement and kappa with people, of the source's and the proposed version's judges, on the
    held-out grades both judges decided (a judge error leaves that case out of both)."""
    decided = [g for g in human if source.get(g) is not None and proposed.get(g) is not None]

    def summary(judge: dict[int, bool | None]) -> dict[str, Any]:
        pairs = [(bool(judge[g]), human[g]) for g in decided]
        return {"agreement": agreement(pairs), "kappa": cohen_kappa(pairs)}

    return {
        "n": len(decided),
        "undecided": len(human) - len(decided),
        "source": summary(source),
        "proposed": summary(proposed),
        "cases": [
            {"grade": g, "human": human[g], "source": source.get(g), "proposed": proposed.get(g)}
            for g in sorted(human)
        ],
    }
