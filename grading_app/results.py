"""Read a run's results as plain per-case rows, the input of summaries and gate rules."""

from dataclasses import dataclass, field

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
    grades: dict[str, GradeRow] = field(default_factory=dict)

    @property
    def failed_to_produce(self) -> bool:
        """Missing or errored: the candidate gave us nothing to judge."""
        return self.missing or bool(self.error)


def load_case_rows(run: Run) -> list[CaseRow]:
    """All case rows of a run in two queries (results with their cases, then grades)."""
    rows: dict[int, CaseRow] = {}
    results = CaseResult.objects.filter(run=run).values_list(
        "id",
        "case_id",
        "case__key",
        "case__tier",
        "case__failure_class__slug",
        "case__risk",
        "case__tags",
        "case__pinned",
        "missing",
        "error",
        "latency_ms",
        "ttft_ms",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "tool_calls",
        "trace_steps",
        "retries",
        "refused",
        "escalated",
    )
    for (
        result_id,
        case_id,
        key,
        tier,
        fc,
        risk,
        tags,
        pinned,
        missing,
        error,
        latency,
        ttft,
        tokens_in,
        tokens_out,
        cost,
        tool_calls,
        steps,
        retries,
        refused,
        escalated,
    ) in results:
        rows[result_id] = CaseRow(
            case_id=case_id,
            key=key,
            tier=tier,
            failure_class=fc,
            risk=risk,
            tags=tags or [],
            pinned=pinned,
            missing=missing,
            error=error,
            latency_ms=latency,
            ttft_ms=ttft,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=cost,
            tool_calls=tool_calls,
            trace_steps=steps,
            retries=retries,
            refused=refused,
            escalated=escalated,
        )
    grades = Grade.objects.filter(case_result__run=run).values_list(
        "case_result_id", "grader__slug", "score", "passed", "error"
    )
    for result_id, slug, score, passed, error in grades:
        rows[result_id].grades[slug] = GradeRow(score=score, passed=passed, error=error)
    return list(rows.values())
