"""Pure plotly figure builders for monitors: a metric over its windows with its 95% interval,
the windows that alerted, and when each release started serving. Plain data in, no queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from evalproject.lazy import lazy_module

# plotly is imported when a figure is first built, not at start-up (evalproject.lazy).
go = lazy_module("plotly.graph_objects")


LINE, BAND, ALERT, RELEASE = "#1f77b4", "rgba(31, 119, 180, 0.18)", "#c62828", "#757575"


def metric_timeline(
    title: str,
    points: Sequence[tuple[datetime, float, tuple[float, float] | None, int]],
    *,
    alerts: Sequence[tuple[datetime, float, str]] = (),
    releases: Sequence[tuple[datetime, str]] = (),
    unit: str = "",
) -> go.Figure:
    """``points`` are (window start, value, 95% interval, n); ``alerts`` (window start, value,
    rule name); ``releases`` (first trace time, release id), drawn as dotted vertical lines."""
    times = [p[0] for p in points]
    figure = go.Figure()
    bounded = [p for p in points if p[2] is not None]
    if bounded:
        figure.add_trace(
            go.Scatter(
                x=[p[0] for p in bounded] + [p[0] for p in reversed(bounded)],
                y=[p[2][1] for p in bounded] + [p[2][0] for p in reversed(bounded)],
                fill="toself",
                fillcolor=BAND,
                line={"width": 0},
                hoverinfo="skip",
                name="95% interval",
            )
        )
    figure.add_trace(
        go.Scatter(
            x=times,
            y=[p[1] for p in points],
            mode="lines+markers",
            line={"color": LINE},
            name=title,
            customdata=[[p[3]] for p in points],
            hovertemplate="%{x|%Y-%m-%d %H:%M}: %{y:.4g} (n=%{customdata[0]})<extra></extra>",
        )
    )
    if alerts:
        figure.add_trace(
            go.Scatter(
                x=[a[0] for a in alerts],
                y=[a[1] for a in alerts],
                mode="markers",
                marker={"color": ALERT, "size": 13, "symbol": "triangle-up"},
                name="alert",
                text=[a[2] for a in alerts],
                hovertemplate="alert: %{text}<br>%{x|%Y-%m-%d %H:%M}: %{y:.4g}<extra></extra>",
            )
        )
    for when, release in releases:
        figure.add_vline(x=when, line={"color": RELEASE, "dash": "dot", "width": 1})
        figure.add_annotation(
            x=when, y=1, yref="paper", text=release, showarrow=False, xanchor="left", font={"size": 10}
        )
    figure.update_layout(title=title, yaxis_title=unit, legend={"orientation": "h", "y": -0.2})
    return figure


def as_points(
    found: Sequence[tuple[datetime, Any]],
) -> list[tuple[datetime, float, tuple[float, float] | None, int]]:
    """Series of (window start, windows.Measure) as chart points."""
    return [(start, m.value, m.interval, m.n) for start, m in found if m.value is not None]
