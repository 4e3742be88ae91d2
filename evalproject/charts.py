"""Embedding plotly figures in admin pages: the figure's div and script, never the library.

Each app builds its figures (pure functions in <app>/charts.py); an admin page that shows
them lists ``PLOTLY_JS`` in its Media, so plotly.js loads once, from our static files.
"""

from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

PLOTLY_JS = "plotly/plotly.min.js"
CONFIG = {"displaylogo": False, "responsive": True}


def render(figure: Any, *, height: int = 360) -> SafeString:
    """The HTML of one figure (a div with class evalgate-chart and its Plotly.newPlot script)."""
    figure.update_layout(height=height, margin={"l": 50, "r": 20, "t": 50, "b": 50}, template="plotly_white")
    html = figure.to_html(full_html=False, include_plotlyjs=False, config=CONFIG)
    # plotly escapes the figure's data as JSON inside its own script: safe to mark as such.
    return mark_safe(f'<div class="evalgate-chart">{html}</div>')


def empty(message: str) -> SafeString:
    """What a chart slot says when there is nothing to draw yet."""
    return format_html('<p class="evalgate-chart-empty">{}</p>', message)
