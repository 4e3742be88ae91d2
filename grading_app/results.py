"""Read a run's results as plain per-case rows, the input of summaries and gate rules."""

from dataclasses import dataclass, field

from datasets_app.models import Case
from grading_app.models import CaseResult, Grade, Run


@dataclass(frozen=True)
class GradeRow:
    score: float | None
    passed: bool | None
    error: str = ""


@dataclass
class CaseRow:
    """One case of a run with its signals and its grades by grader slug."""

    case_id: int
    key: str
    tier: str
    failure_class: str
    risk: str
    tags: list[str]
    pinned: bool
    missing: bool
    error: str
    latency_ms: float | None = None
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    tool_calls: int = 0
    trace_steps: int = 0
    retries: int = 0
    refused: bool | None = None
    escalated: bool | None = None
    tool_sequence: list[str] = field(default_factory=list)
    grades: dict[str, GradeRow] = field(default_factory=dict)

    @property
    def failed_to_produce(self) -> bool:
        """Missing or errored: the candidate gave us nothing to judge."""
        return self.missing or bool(self.error)


# CaseRow field -> the CaseResult lookup that fills it.
ROW_FIELDS = {
    "case_id": "case_id",
    "key": "case__key",
    "tier": "case__tier",
    "failure_class": "case__failure_class__slug",
    "risk": "case__risk",
    "tags": "case__tags",
    "pinned": "case__pinned",
    "missing": "missing",
    "error": "error",
    "latency_ms": "latency_ms",
    "ttft_ms": "ttft_ms",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cost_usd": "cost_usd",
    "tool_calls": "tool_calls",
    "trace_steps": "trace_steps",
    "retries": "retries",
    "refused": "refused",
    "escalated": "escalated",
    "tool_sequence": "tool_sequence",
}


def load_case_rows(run: Run) -> list[CaseRow]:
    """All case rows of a run in two queries (results with their cases, then grades)."""
    rows: dict[int, CaseRow] = {}
    for values in CaseResult.objects.filter(run=run).values("id", *ROW_FIELDS.values()):
        rows[values["id"]] = CaseRow(**{name: values[lookup] for name, lookup in ROW_FIELDS.items()})
    grades = Grade.objects.filter(case_result__run=run).values_list(
        "case_result_id", "grader__slug", "score", "passed", "error"
    )
    for result_id, slug, score, passed, error in grades:
        rows[result_id].grades[slug] = GradeRow(score=score, passed=passed, error=error)
    return list(rows.values())


def load_pinned_not_run(run: Run) -> list[CaseRow]:
    """The dataset's pinned cases the run did not include (they were not active when it
    started), as rows whose ``error`` says why; the pinned rule names them (one query)."""
    ran = CaseResult.objects.filter(run=run).values("case_id")
    pinned = (
        Case.objects.filter(dataset_id=run.dataset_id, pinned=True)
        .exclude(pk__in=ran)
        .values_list("pk", "key", "tier", "failure_class__slug", "risk", "tags", "status")
    )
    return [
        CaseRow(
            case_id=pk,
            key=key,
            tier=tier,
            failure_class=failure_class,
            risk=risk,
            tags=tags,
            pinned=True,
            missing=True,
            error=f"{status.replace('_', ' ')}, not active",
        )
        for pk, key, tier, failure_class, risk, tags, status in pinned
    ]
