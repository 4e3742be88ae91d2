"""Candidate and baseline rows paired by case, both read once in case id order."""

from collections.abc import Iterable, Iterator

from grading_app.results import CaseRow


def pair_by_case(
    rows: Iterable[CaseRow], baseline_rows: Iterable[CaseRow] | None
) -> Iterator[tuple[CaseRow | None, CaseRow | None]]:
    """(candidate row, baseline row) per case, in case id order; None where a side lacks the case.

    Both sides are read once, in case id order (iter_case_rows streams them so); a list is
    sorted first. A stream out of order would pair the wrong cases, so it is refused."""

    def ordered(side: Iterable[CaseRow]) -> Iterator[CaseRow]:
        if isinstance(side, list | tuple):
            side = sorted(side, key=lambda r: r.case_id)
        last = None
        for row in side:
            if last is not None and row.case_id < last:
                raise ValueError(f"case rows out of case id order ({row.case_id} after {last})")
            last = row.case_id
            yield row

    candidates = ordered(rows)
    if baseline_rows is None:
        for row in candidates:
            yield row, None
        return
    baselines = ordered(baseline_rows)
    row, base = next(candidates, None), next(baselines, None)
    while row is not None or base is not None:
        if base is None or (row is not None and row.case_id < base.case_id):
            yield row, None
            row = next(candidates, None)
        elif row is None or base.case_id < row.case_id:
            yield None, base
            base = next(baselines, None)
        else:
            yield row, base
            row, base = next(candidates, None), next(baselines, None)
