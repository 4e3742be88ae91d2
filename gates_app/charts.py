"""Pure plotly figure builders for gates and checks: plain data in, a figure out, no queries.

Rule metrics live on different scales (shares, milliseconds, dollars, counts), so charts that
put several rules side by side draw one subplot per unit rather than one misleading axis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from evalproject.lazy import lazy_module
from gates_app import metrics
from gates_app.choices import Verdict

# plotly is imported when a figure is first built, not at start-up (evalproject.lazy).
go = lazy_module("plotly.graph_objects")
subplots = lazy_module("plotly.subplots")

CANDIDATE, BASELINE, THRESHOLD = "#1f77b4", "#a0a0a0", "#222222"
VERDICT_COLOURS = {
    Verdict.PASS: "#2e7d32",
    Verdict.WARN: "#f9a825",
    Verdict.INCONCLUSIVE: "#757575",
    Verdict.FAIL: "#c62828",
    Verdict.PENDING: "#90caf9",
}
# Bottom to top on a verdict axis: the good news sits on top.
VERDICT_ORDER = [Verdict.PENDING, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.WARN, Verdict.PASS]

SHARE, MS, USD, PER_CASE, OTHER = "share", "ms", "usd", "per_case", "other"
UNIT_TITLES = {
    SHARE: "Share of cases",
    MS: "Milliseconds",
    USD: "USD per case",
    PER_CASE: "Per case",
    OTHER: "Value",
}
TRACE_METRICS = {
    "tool_calls_mean": "tool calls",
    "trace_steps_mean": "trace steps",
    "retry_rate": "retry rate",
    "refusal_rate": "refusal rate",
}


def _wrap(text: str, width: int = 11) -> str:
    """A long rule name on several lines, so bars with many rules keep readable labels."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "<br>".join([*lines, line])


def unit_of(metric: str) -> str:
    """The unit a rule metric's value is in, which decides the subplot it is drawn on."""
    if metric.endswith("_ms"):
        return MS
    if metric.endswith("_usd"):
        return USD
    try:
        spec = metrics.get_metric(metric)
    except KeyError:
        return OTHER  # a metric registered elsewhere, or since removed: still drawn
    # Grader metrics are pass shares or scores in [0, 1], like the rates.
    if spec.aggregate in (metrics.RATE, metrics.ALL) or spec.needs_grader:
        return SHARE
    return PER_CASE


def _by_unit(names_and_metrics: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Names grouped by their metric's unit, both in order of first appearance."""
    groups: dict[str, list[str]] = {}
    for name, metric in names_and_metrics:
        members = groups.setdefault(unit_of(metric), [])
        if name not in members:
            members.append(name)
    return groups


def _format_axes(figure: go.Figure, units: list[str]) -> None:
    """Name each subplot's unit on its y axis (subplot titles would collide with the figure's)."""
    for column, unit in enumerate(units, start=1):
        figure.update_yaxes(
            title_text=UNIT_TITLES[unit],
            tickformat=".0%" if unit == SHARE else None,
            automargin=True,
            row=1,
            col=column,
        )


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def rule_comparison(
    rule_results: list[dict[str, Any]], *, baseline_results: list[dict[str, Any]] | None = None
) -> go.Figure:
    """Candidate against baseline value per rule, with the threshold as a marker.

    A no-regression rule carries its own baseline value; other rules take the value the same
    rule had on the baseline check (``baseline_results``), matched by name.
    """
    earlier = {r["name"]: r.get("value") for r in baseline_results or []}
    by_name = {r["name"]: r for r in rule_results}
    groups = _by_unit((r["name"], r["metric"]) for r in rule_results)
    figure = subplots.make_subplots(
        rows=1,
        cols=max(len(groups), 1),
        column_widths=[len(names) for names in groups.values()] or None,
        horizontal_spacing=0.12,
    )
    for column, names in enumerate(groups.values(), start=1):
        results = [by_name[name] for name in names]
        labels = [f"{_wrap(r['name'])}<br>{str(r['outcome']).upper()}" for r in results]
        values = [r.get("value") for r in results]
        baselines = [
            r["baseline"] if r.get("baseline") is not None else earlier.get(r["name"]) for r in results
        ]
        # The interval of a no-regression rule is of the paired difference, not of the value.
        above, below = [], []
        for r in results:
            interval = r.get("interval")
            own = interval and r.get("value") is not None and "paired_difference" not in r
            above.append(interval[1] - r["value"] if own else 0)
            below.append(r["value"] - interval[0] if own else 0)
        first = column == 1
        figure.add_trace(
            go.Bar(
                name="candidate",
                x=labels,
                y=values,
                marker_color=CANDIDATE,
                error_y={"type": "data", "symmetric": False, "array": above, "arrayminus": below},
                hovertext=[f"n={r.get('n')}, 95% interval {r.get('interval')}" for r in results],
                legendgroup="candidate",
                showlegend=first,
            ),
            row=1,
            col=column,
        )
        figure.add_trace(
            go.Bar(
                name="baseline",
                x=labels,
                y=baselines,
                marker_color=BASELINE,
                legendgroup="baseline",
                showlegend=first,
            ),
            row=1,
            col=column,
        )
        figure.add_trace(
            go.Scatter(
                name="threshold",
                x=labels,
                y=[r.get("threshold") for r in results],
                mode="markers",
                marker={"symbol": "line-ew-open", "size": 36, "color": THRESHOLD, "line": {"width": 3}},
                legendgroup="threshold",
                showlegend=first,
            ),
            row=1,
            col=column,
        )
    _format_axes(figure, list(groups))
    figure.update_layout(barmode="group", title="Rules: candidate against baseline")
    figure.update_xaxes(tickangle=0, automargin=True, tickfont={"size": 10})
    return figure


def trace_deltas(deltas: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """Per failure class: change against the baseline of the trace means and rates, and how
    many cases changed their tool sequence."""
    classes = list(deltas)
    figure = subplots.make_subplots(rows=1, cols=3, horizontal_spacing=0.16)  # room for "+100%" and a title
    for column, keys in ((1, ("tool_calls_mean", "trace_steps_mean")), (2, ("retry_rate", "refusal_rate"))):
        for key in keys:
            entries = [deltas[c].get(key) or {} for c in classes]
            figure.add_trace(
                go.Bar(
                    name=TRACE_METRICS[key],
                    x=classes,
                    y=[e.get("delta") for e in entries],
                    hovertext=[
                        f"candidate {_fmt(e.get('candidate'))}, baseline {_fmt(e.get('baseline'))}"
                        for e in entries
                    ],
                ),
                row=1,
                col=column,
            )
    figure.add_trace(
        go.Bar(
            name="tool sequence changed",
            x=classes,
            y=[(deltas[c].get("tool_sequence_changed") or {}).get("count", 0) for c in classes],
            marker_color=THRESHOLD,
        ),
        row=1,
        col=3,
    )
    figure.update_yaxes(title_text="Δ mean per case", automargin=True, row=1, col=1)
    figure.update_yaxes(title_text="Δ share of cases", tickformat="+.0%", automargin=True, row=1, col=2)
    figure.update_yaxes(title_text="cases, tool sequence changed", automargin=True, row=1, col=3)
    figure.update_layout(barmode="group", title="Trace deltas against the baseline, per failure class")
    return figure


def verdict_history(points: Iterable[tuple[datetime, str, str]]) -> go.Figure:
    """Each check as a dot on a timeline, at the height (and colour) of its verdict."""
    by_verdict: dict[str, list[tuple[datetime, str]]] = {}
    for created_at, verdict, candidate in points:
        by_verdict.setdefault(verdict, []).append((created_at, candidate))
    figure = go.Figure()
    shown = [v for v in VERDICT_ORDER if v in by_verdict] + sorted(set(by_verdict) - set(VERDICT_ORDER))
    for verdict in reversed(shown):  # legend top to bottom as the axis reads
        checks = by_verdict[verdict]
        figure.add_trace(
            go.Scatter(
                name=str(verdict),
                x=[created_at for created_at, _ in checks],
                y=[str(verdict)] * len(checks),
                text=[candidate for _, candidate in checks],
                mode="markers",
                marker={"size": 11, "color": VERDICT_COLOURS.get(verdict, THRESHOLD)},
                hovertemplate="%{text}<br>%{x}<extra>%{y}</extra>",
            )
        )
    figure.update_yaxes(categoryorder="array", categoryarray=[str(v) for v in shown])
    figure.update_layout(title="Verdicts over time")
    return figure


def rule_trends(
    points: Iterable[tuple[datetime, str, float | None]], *, metric_of: Mapping[str, str] | None = None
) -> go.Figure:
    """One line per rule across checks; with ``metric_of`` (rule name -> metric), rules in
    different units go to different subplots. A missing value is a gap, not a zero."""
    series: dict[str, tuple[list[datetime], list[float | None]]] = {}
    for created_at, name, value in sorted(points, key=lambda p: p[0]):
        xs, ys = series.setdefault(name, ([], []))
        xs.append(created_at)
        ys.append(value)
    metric_of = metric_of or {}
    groups = _by_unit((name, metric_of.get(name, "")) for name in series)
    figure = subplots.make_subplots(
        rows=1,
        cols=max(len(groups), 1),
        horizontal_spacing=0.12,
    )
    for column, names in enumerate(groups.values(), start=1):
        for name in names:
            xs, ys = series[name]
            figure.add_trace(go.Scatter(name=name, x=xs, y=ys, mode="lines+markers"), row=1, col=column)
    if len(groups) > 1:
        _format_axes(figure, list(groups))
    figure.update_layout(title="Rule values across checks")
    return figure


def verdict_counts(counts: Mapping[str, int], *, title: str = "") -> go.Figure:
    """How many checks ended in each verdict (one bar per verdict, in verdict colours)."""
    verdicts = [v for v in reversed(VERDICT_ORDER) if counts.get(v)]
    figure = go.Figure(
        go.Bar(
            x=[str(v) for v in verdicts],
            y=[counts[v] for v in verdicts],
            marker_color=[VERDICT_COLOURS[v] for v in verdicts],
        )
    )
    figure.update_layout(showlegend=False, title=title)
    return figure
