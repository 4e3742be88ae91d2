"""Trace deltas: per failure class, how the candidate's traces moved against the baseline's.

Mean tool calls, trace steps, retry and refusal rates of the cases that produced, and the
cases (same case, both produced) whose tool sequence changed. Kept as counts and the first
changed cases by key, so memory stays flat whatever the size of the runs.
"""

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from gates_app.pairing import pair_by_case
from grading_app.results import CaseRow

CHANGED_CASES_SHOWN = 50


class _Means:
    """Mean tool calls, trace steps, retry and refusal rates of the rows that produced."""

    NAMES = ("tool_calls_mean", "trace_steps_mean", "retry_rate", "refusal_rate")

    def __init__(self) -> None:
        self.produced = self.tool_calls = self.trace_steps = self.retried = 0
        self.refusals_known = self.refused = 0

    def add(self, row: CaseRow) -> None:
        if row.failed_to_produce:
            return
        self.produced += 1
        self.tool_calls += row.tool_calls
        self.trace_steps += row.trace_steps
        self.retried += row.retries > 0
        if row.refused is not None:
            self.refusals_known += 1
            self.refused += float(row.refused)  # a bool, or of several trials the share refused

    def result(self) -> dict[str, float | None]:
        n = self.produced
        return {
            "tool_calls_mean": self.tool_calls / n if n else None,
            "trace_steps_mean": self.trace_steps / n if n else None,
            "retry_rate": self.retried / n if n else None,
            "refusal_rate": self.refused / self.refusals_known if self.refusals_known else None,
        }


class TraceDeltas:
    """Per failure class: the candidate's trace means against the baseline's, and the cases
    (same case, both produced) whose tool sequence changed, the first ones by key kept."""

    def __init__(self) -> None:
        self.candidate: dict[str, _Means] = defaultdict(_Means)
        self.baseline: dict[str, _Means] = defaultdict(_Means)
        self.changed: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.changed_n: dict[str, int] = defaultdict(int)

    def add(self, row: CaseRow | None, base: CaseRow | None) -> None:
        if row is not None:
            self.candidate[row.failure_class].add(row)
        if base is not None:
            self.baseline[base.failure_class].add(base)
        if (
            row is not None
            and base is not None
            and not row.failed_to_produce
            and not base.failed_to_produce
            and base.tool_sequence != row.tool_sequence
        ):
            self.changed_n[row.failure_class] += 1
            shown = self.changed[row.failure_class]
            shown.append({"case": row.key, "baseline": base.tool_sequence, "candidate": row.tool_sequence})
            if len(shown) >= 10 * CHANGED_CASES_SHOWN:  # keep the first by key, not all of them
                shown.sort(key=lambda c: c["case"])
                del shown[CHANGED_CASES_SHOWN:]

    def result(self) -> dict[str, Any]:
        deltas: dict[str, Any] = {}
        for failure_class in sorted(set(self.candidate) | set(self.baseline)):
            candidate = self.candidate[failure_class].result()
            baseline = self.baseline[failure_class].result()
            entry: dict[str, Any] = {
                name: {
                    "candidate": candidate[name],
                    "baseline": baseline[name],
                    "delta": None
                    if candidate[name] is None or baseline[name] is None
                    else candidate[name] - baseline[name],
                }
                for name in _Means.NAMES
            }
            shown = sorted(self.changed[failure_class], key=lambda c: c["case"])[:CHANGED_CASES_SHOWN]
            entry["tool_sequence_changed"] = {"count": self.changed_n[failure_class], "cases": shown}
            deltas[failure_class] = entry
        return deltas


def trace_deltas(rows: Iterable[CaseRow], baseline_rows: Iterable[CaseRow] | None) -> dict[str, Any]:
    """Per failure class: change of mean tool calls, trace steps, retry and refusal rates
    against the baseline, and the cases (same case, both produced) whose tool sequence changed."""
    if baseline_rows is None:
        return {}
    deltas = TraceDeltas()
    for row, base in pair_by_case(rows, baseline_rows):
        deltas.add(row, base)
    return deltas.result()
