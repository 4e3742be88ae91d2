"""Read a run's results as plain per-case rows, the input of summaries and gate rules."""

import functools
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import NamedTuple

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast

from datasets_app.models import Case
from grading_app.models import CaseResult, Grade, Grader, Run


class GradeRow(NamedTuple):  # a tuple: a run's grades are the most numerous objects read
    score: float | None
    passed: bool | None  # of several trials: whether every graded trial passed
    error: str = ""
    passed_n: int | None = None  # of several trials: how many passed (None: one trial)
    of: int = 1  # of several trials: how many were graded (an errored one is not)

    @property
    def passes(self) -> int:
        """Trials that passed (a single trial: 1 or 0)."""
        return self.passed_n if self.passed_n is not None else int(bool(self.passed))


@dataclass(slots=True)
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
    trials: int = 1  # the results this row stands for: a case's repeated trials, merged

    @property
    def failed_to_produce(self) -> bool:
        """Missing or errored: the candidate gave us nothing to judge."""
        return self.missing or bool(self.error)


# The CaseResult lookups that fill a CaseRow, in CaseRow's field order (grades aside). The two
# JSON lists are read as text and decoded here: most rows repeat a few values ("[]" above all).
ROW_LOOKUPS = (
    "case_id", "case__key", "case__tier", "case__failure_class__slug", "case__risk", "tags_text",
    "case__pinned", "missing", "error", "latency_ms", "ttft_ms", "input_tokens", "output_tokens",
    "cost_usd", "tool_calls", "trace_steps", "retries", "refused", "escalated", "tool_sequence_text",
    "trial",
)  # fmt: skip
ROW_BOOLEANS = tuple(
    i for i, name in enumerate(ROW_LOOKUPS) if name in ("case__pinned", "missing", "refused", "escalated")
)
CHUNK_ROWS = 2000  # rows fetched at a time: memory stays flat whatever the size of the run


class _Lists:
    """Decodes JSON lists, sharing the result between rows with the same text (read-only)."""

    KEPT = 10_000

    def __init__(self) -> None:
        self.seen: dict[str, list] = {}

    def __call__(self, text: str | None) -> list:
        if text is None:
            return []
        value = self.seen.get(text)
        if value is None:
            value = json.loads(text)
            if len(self.seen) < self.KEPT:
                self.seen[text] = value
        return value


def _fetched(queryset: QuerySet, booleans: tuple[int, ...]) -> Iterator[list[tuple]]:
    """The queryset's rows as the driver returns them, in lists of CHUNK_ROWS (itertools.chain
    reads them one by one faster than a generator resumed per row) through a server-side
    cursor where the database has one (connection.chunked_cursor(), as QuerySet.iterator() uses)
    without the ORM's per-row work. SQLite returns booleans as 0/1: the ``booleans`` columns
    are made bools there, which is the one conversion these columns need."""
    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:  # e.g. grades of no grader: the ORM would return no rows either
        return
    convert = bool(booleans) and connection.vendor == "sqlite"
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(CHUNK_ROWS):
            if convert:
                rows = [
                    tuple(bool(v) if i in booleans and v is not None else v for i, v in enumerate(r))
                    for r in rows
                ]
            yield rows


def iter_case_rows(run: Run | int, graders: Collection[str] | None = None) -> Iterator[CaseRow]:
    """The run's case rows in case id order, streamed: two queries (results with their cases,
    and grades in the same order) read a chunk at a time and merged here, so a summary or a
    verdict over 100,000 cases holds a chunk of rows, not the run. A case run several times
    (trials) is one row: its trials merged (``merge_trials``)."""
    run_id = run if isinstance(run, int) else run.pk
    results = chain.from_iterable(
        _fetched(
            CaseResult.objects.filter(run_id=run_id)
            .annotate(
                tags_text=Cast("case__tags", TextField()),
                tool_sequence_text=Cast("tool_sequence", TextField()),
            )
            .order_by("case_id", "trial")
            .values_list(*ROW_LOOKUPS),
            booleans=ROW_BOOLEANS,
        )
    )
    slugs = dict(Grader.objects.values_list("pk", "slug"))
    # Only these graders' grades (a baseline read for its paired rules), by id: no join to graders.
    grader_ids = None if graders is None else [pk for pk, slug in slugs.items() if slug in set(graders)]
    grades = chain.from_iterable(_grades(run_id, grader_ids))
    lists = _Lists()
    grade = next(grades, None)
    trials: list[CaseRow] = []  # the trials of the case being read, when it has several
    # Per row of a 10,000-case verdict's two reads, so written for speed: no tuple is built to
    # compare the two streams' positions.
    for fields in results:
        row = CaseRow(*fields[:-1])
        case_id, trial = row.case_id, fields[-1]
        row.tags, row.tool_sequence = lists(row.tags), lists(row.tool_sequence)
        # Every grade belongs to one of the run's results, so the two streams advance together.
        while grade is not None and (grade[0] < case_id or (grade[0] == case_id and grade[1] <= trial)):
            if grade[0] == case_id and grade[1] == trial:
                row.grades[slugs[grade[2]]] = GradeRow(grade[3], grade[4], grade[5])
            grade = next(grades, None)
        if trials and trials[0].case_id != case_id:
            yield merge_trials(trials)
            trials = []
        trials.append(row)
    if trials:
        yield merge_trials(trials)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def merge_trials(rows: list[CaseRow]) -> CaseRow:
    """One case's trials as one row (a single trial is returned as it is).

    The case failed to produce when any trial did (missing data is never a pass); its signals
    are the means over the trials that produced (refused and escalated: the share of them);
    its tool sequence is the first trial's. Per grader: the mean score, how many of the graded
    trials passed (``passed_n`` of ``of``), ``passed`` when all of them did, and the first
    error (an errored trial makes the case errored for that grader)."""
    if len(rows) == 1:
        return rows[0]
    first = rows[0]
    produced = [r for r in rows if not r.failed_to_produce] or rows

    def mean_of(name: str) -> float | None:
        return _mean([float(getattr(r, name)) for r in produced if getattr(r, name) is not None])

    merged = CaseRow(
        first.case_id,
        first.key,
        first.tier,
        first.failure_class,
        first.risk,
        first.tags,
        first.pinned,
        missing=any(r.missing for r in rows),
        error=next((r.error for r in rows if r.error and not r.missing), ""),
        latency_ms=mean_of("latency_ms"),
        ttft_ms=mean_of("ttft_ms"),
        input_tokens=mean_of("input_tokens"),
        output_tokens=mean_of("output_tokens"),
        cost_usd=mean_of("cost_usd"),
        tool_calls=mean_of("tool_calls") or 0,
        trace_steps=mean_of("trace_steps") or 0,
        retries=mean_of("retries") or 0,
        refused=mean_of("refused"),
        escalated=mean_of("escalated"),
        tool_sequence=produced[0].tool_sequence,
        trials=len(rows),
    )
    for slug in dict.fromkeys(slug for r in rows for slug in r.grades):
        graded = [r.grades[slug] for r in rows if slug in r.grades]
        decided = [g for g in graded if not g.error and g.passed is not None]
        error = next((g.error or "the grader decided nothing" for g in graded if g not in decided), "")
        passed_n = sum(bool(g.passed) for g in decided)
        merged.grades[slug] = GradeRow(
            score=_mean([g.score for g in decided if g.score is not None]),
            passed=passed_n == len(decided) if decided else None,
            error=error,
            passed_n=passed_n,
            of=len(decided),
        )
    return merged


def _grades(run_id: int, grader_ids: list[int] | None) -> Iterator[list[tuple]]:
    """(case id, trial, grader id, score, passed, error) of the run's grades in case id and
    trial order, in lists of CHUNK_ROWS.

    On PostgreSQL, one index probe per result (the grade's unique (case result, grader) index)
    from the results in case id order (the (run, case, trial) unique index): a plan that holds
    whatever the planner's statistics say. A finaliser reads a run right after its chunks
    wrote it, before autovacuum has counted the rows; the ORM's join was then planned for 64
    results, and for a baseline read of one grader it chose a nested loop comparing every
    result with every grade of that grader: 7 s at 10,000 cases instead of 0.1 s.
    """
    graded = Grade.objects.filter(case_result__run_id=run_id)
    if grader_ids is not None:
        graded = graded.filter(grader_id__in=grader_ids)
    if connection.vendor != "postgresql":
        order = graded.order_by("case_result__case_id", "case_result__trial", "grader_id")
        columns = ("case_result__case_id", "case_result__trial", "grader_id", "score", "passed", "error")
        yield from _fetched(order.values_list(*columns), booleans=(4,))
        return
    of_graders = "" if grader_ids is None else "AND g.grader_id = ANY(%s)"
    sql = _lateral_grades_sql().format(of_graders=of_graders)
    params = [run_id] if grader_ids is None else [grader_ids, run_id]
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(CHUNK_ROWS):
            yield rows


@functools.cache
def _lateral_grades_sql() -> str:
    qn = connection.ops.quote_name
    result, grade = CaseResult._meta, Grade._meta
    column = {
        name: qn(grade.get_field(name).column)
        for name in ("case_result", "grader", "score", "passed", "error")
    }
    return (
        f"SELECT r.{qn(result.get_field('case').column)}, r.{qn(result.get_field('trial').column)}, "
        f"g.{column['grader']}, g.{column['score']}, "
        f"g.{column['passed']}, g.{column['error']} "
        f"FROM {qn(result.db_table)} r CROSS JOIN LATERAL ("
        f"SELECT * FROM {qn(grade.db_table)} g WHERE g.{column['case_result']} = r.{qn(result.pk.column)} "
        # OFFSET 0 keeps the subquery from being flattened into a join the planner may
        # then order as it likes: it runs per result, as an index probe.
        "{of_graders} OFFSET 0"
        f") g WHERE r.{qn(result.get_field('run').column)} = %s "
        f"ORDER BY r.{qn(result.get_field('case').column)}, r.{qn(result.get_field('trial').column)}, "
        f"g.{column['grader']}"
    )


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
