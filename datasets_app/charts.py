"""Pure plotly figure builders for datasets: counted rows in, a figure out, no queries."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from itertools import accumulate

from datasets_app.choices import CaseStatus, IncidentStatus, Severity, Tier
from evalproject.lazy import lazy_module

# plotly is imported when a figure is first built, not at start-up (evalproject.lazy).
go = lazy_module("plotly.graph_objects")

STATUS_COLOURS = {
    CaseStatus.DRAFT: "#bdbdbd",
    CaseStatus.IN_REVIEW: "#f9a825",
    CaseStatus.ACTIVE: "#2e7d32",
    CaseStatus.RETIRED: "#616161",
}
DAY_MS = 24 * 60 * 60 * 1000  # plotly's date axes tick in milliseconds
SEVERITY_COLOURS = {
    Severity.LOW: "#90caf9",
    Severity.MEDIUM: "#1e88e5",
    Severity.HIGH: "#ef6c00",
    Severity.CRITICAL: "#c62828",
}


def _ordered(known: Iterable[str], seen: Iterable[str]) -> list[str]:
    """The values seen, in the choices' order, then any unknown ones sorted."""
    seen = set(seen)
    return [v for v in known if v in seen] + sorted(seen - set(known))


def cases_by_tier_class_status(rows: Iterable[tuple[str, str, str, int]]) -> go.Figure:
    """Stacked bars of (tier, failure class, status, count): one bar per tier and failure class,
    stacked by status."""
    counts = {(tier, fc, status): n for tier, fc, status, n in rows}
    groups = sorted(
        {(tier, fc) for tier, fc, _ in counts},
        key=lambda g: (Tier.values.index(g[0]) if g[0] in Tier.values else len(Tier.values), g),
    )
    # A two-level axis: tiers underneath, failure classes within them.
    x = [[tier for tier, _ in groups], [fc for _, fc in groups]]
    figure = go.Figure()
    for status in _ordered(CaseStatus.values, (s for _, _, s in counts)):
        figure.add_trace(
            go.Bar(
                name=status.replace("_", " "),
                x=x,
                y=[counts.get((tier, fc, status), 0) for tier, fc in groups],
                marker_color=STATUS_COLOURS.get(status),
            )
        )
    figure.update_layout(barmode="stack", title="Cases by tier, failure class and status")
    return figure


def growth(rows: Iterable[tuple[date, str, int]]) -> go.Figure:
    """Cumulative cases added over time from (day, tier, cases added that day), one line per tier.

    Retired cases still count: this is how the dataset grew, not what is active today.
    """
    by_tier: dict[str, dict[date, int]] = {}
    for day, tier, n in rows:
        days = by_tier.setdefault(tier, {})
        days[day] = days.get(day, 0) + n
    figure = go.Figure()
    for tier in _ordered(Tier.values, by_tier):
        days = sorted(by_tier[tier])
        figure.add_trace(
            go.Scatter(
                name=tier,
                x=days,
                y=list(accumulate(by_tier[tier][d] for d in days)),
                mode="lines+markers",
                line={"shape": "hv"},  # a count steps up on the day cases arrive
            )
        )
    all_days = [day for days in by_tier.values() for day in days]
    if all_days:
        # A day either side, and whole days as ticks while the span is short: otherwise plotly
        # zooms a dataset added in one day down to milliseconds.
        first, last = min(all_days), max(all_days)
        figure.update_xaxes(
            range=[first - timedelta(days=1), last + timedelta(days=1)],
            tickformat="%Y-%m-%d",
            dtick=DAY_MS if (last - first).days <= 14 else None,
        )
    figure.update_layout(title="Cases added over time", yaxis_title="cases")
    return figure


def incidents_by_status(rows: Iterable[tuple[str, str, int]]) -> go.Figure:
    """Incidents per status (new, triaged, converted, dismissed), stacked by severity."""
    counts = {(status, severity): n for status, severity, n in rows}
    statuses = IncidentStatus.values  # every status, so "converted: 0" shows as such
    figure = go.Figure()
    for severity in _ordered(Severity.values, (s for _, s in counts)):
        figure.add_trace(
            go.Bar(
                name=severity,
                x=statuses,
                y=[counts.get((status, severity), 0) for status in statuses],
                marker_color=SEVERITY_COLOURS.get(severity),
            )
        )
    figure.update_layout(barmode="stack", title="Incidents by status", yaxis_title="incidents")
    return figure
