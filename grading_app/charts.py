"""Pure plotly figure builders for the grading admin pages: plain data in, a figure out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalproject.lazy import lazy_module
from grading_app.calibration import agreement, cohen_kappa
from grading_app.stats import mean, percentile

# plotly is imported when a figure is first built, not at start-up (evalproject.lazy).
go = lazy_module("plotly.graph_objects")

# The summary's groupings, as the run page names them on the x axis.
GROUPINGS = (("by_tier", "tier"), ("by_failure_class", "failure class"))


def _groups(summary: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (label, name, group.get("graders", {}))
        for key, label in GROUPINGS
        for name, group in summary.get(key, {}).items()
    ]


def has_pass_rates(summary: dict[str, Any]) -> bool:
    return any(graders for _, _, graders in _groups(summary))


def pass_rate_by_group(summary: dict[str, Any], trials: int = 1) -> go.Figure:
    """One bar per grader and group (each tier, each failure class) of a run summary, with the
    95% Wilson interval as asymmetric error bars; a group a grader did not grade has no bar.
    With repeated trials the summary counts graded trials (grading_app.summary): the hover and
    the title say so, and pass@k per case is the run page's trials table."""
    unit = "trials" if trials > 1 else ""
    groups = _groups(summary)
    x = [[label for label, _, _ in groups], [name for _, name, _ in groups]]  # a two-level axis
    slugs = sorted({slug for _, _, graders in groups for slug in graders})
    figure = go.Figure()
    for slug in slugs:
        rates: list[float | None] = []
        above: list[float] = []
        below: list[float] = []
        hover: list[str] = []
        for _, _, graders in groups:
            stats = graders.get(slug) or {}
            rate, interval = stats.get("pass_rate"), stats.get("interval")
            rates.append(rate)
            # Rounding can put the rate a hair outside its own interval: never a negative bar.
            above.append(max(interval[1] - rate, 0.0) if rate is not None and interval else 0.0)
            below.append(max(rate - interval[0], 0.0) if rate is not None and interval else 0.0)
            hover.append(
                f"{stats.get('passed', 0)}/{stats.get('n', 0)} {unit + ' ' if unit else ''}passed, "
                f"{stats.get('errors', 0)} errors"
            )
        figure.add_trace(
            go.Bar(
                name=slug,
                x=x,
                y=rates,
                error_y={"type": "data", "symmetric": False, "array": above, "arrayminus": below},
                customdata=hover,
                hovertemplate="%{y:.1%} (%{customdata})<extra>%{fullData.name}</extra>",
            )
        )
    figure.update_layout(
        title="Pass rate by tier and failure class"
        + (f" (over graded trials: {trials} per case; per case: Repeated trials)" if trials > 1 else ""),
        barmode="group",
        yaxis={"title": "pass rate, 95% Wilson interval", "range": [0, 1.05], "tickformat": ".0%"},
        showlegend=True,  # name the grader even when there is only one
        legend_title_text="grader",
    )
    return figure


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def latency_and_ttft_histogram(
    latencies: Sequence[float], ttfts: Sequence[float], trials: int = 1
) -> go.Figure:
    """Overlaid distributions of end-to-end latency and time to first token, p50/p95 in the legend;
    with repeated trials each case is one value, the mean of its trials, as in the run summary."""
    figure = go.Figure()
    for label, values in (("latency", latencies), ("TTFT", ttfts)):
        if values:  # a target that does not stream has no TTFT: no empty legend entry
            name = f"{label} (p50 {_ms(percentile(values, 50))}, p95 {_ms(percentile(values, 95))})"
            figure.add_trace(go.Histogram(x=list(values), name=name, opacity=0.65))
    figure.update_layout(
        title="Latency and time to first token"
        + (f" (per case: the mean of its {trials} trials)" if trials > 1 else ""),
        barmode="overlay",
        xaxis_title="milliseconds",
        yaxis_title="cases",
    )
    return figure


def cost_per_case(costs: Sequence[float], trials: int = 1) -> go.Figure:
    """Cost per case as a box with every case as a point, the mean dashed (a case of repeated
    trials: the mean of its trials, as in the run summary)."""
    average = mean(costs)
    each = f", each the mean of its {trials} trials" if trials > 1 else ""
    title = "Cost per case" + (
        "" if average is None else f" (mean ${average:.4f} over {len(costs)} cases{each})"
    )
    figure = go.Figure(
        go.Box(x=list(costs), name="cost", boxpoints="all", boxmean=True, jitter=0.3, hoverinfo="x")
    )
    figure.update_layout(title=title, xaxis={"title": "USD per case", "tickprefix": "$"}, showlegend=False)
    return figure


def confusion_matrix(pairs: Sequence[tuple[bool, bool]]) -> go.Figure:
    """Counts of (judge, human) verdicts as a 2x2 heatmap; agreement and kappa in the title."""
    verdicts = (True, False)
    counts = [[sum(1 for pair in pairs if pair == (j, h)) for h in verdicts] for j in verdicts]
    share, kappa = agreement(pairs), cohen_kappa(pairs)
    title = (
        f"Judge vs human (n={len(pairs)}): agreement {'-' if share is None else f'{share:.0%}'}, "
        f"Cohen's kappa {'-' if kappa is None else f'{kappa:.2f}'}"
    )
    figure = go.Figure(
        go.Heatmap(
            z=counts,
            x=["human pass", "human fail"],
            y=["judge pass", "judge fail"],
            text=counts,
            texttemplate="%{text}",
            colorscale="Blues",
            showscale=False,
            hovertemplate="%{y}, %{x}: %{z}<extra></extra>",
        )
    )
    # Reading order: the judge's "pass" row on top, as in a printed confusion table.
    figure.update_layout(title=title, yaxis={"autorange": "reversed"}, width=600)
    return figure
