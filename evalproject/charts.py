"""Embedding plotly figures in admin pages: the figure's div and script, and plotly.js once.

Each app builds its figures (pure functions in <app>/charts.py) and embeds them with
``render``. The first chart of a page brings the script tag of plotly.js (4.8 MB, from our
own static files: no CDN), so pages without a chart never load it; ``ChartsMiddleware``
starts every request with no chart drawn yet.
"""

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

PLOTLY_JS = "plotly/plotly.min.js"
CONFIG = {"displaylogo": False, "responsive": True}
_library_sent: ContextVar[bool] = ContextVar("evalgate_plotly_sent", default=False)


def library_tag() -> SafeString:
    """The script tag of plotly.js the first time a page asks, nothing afterwards."""
    if _library_sent.get():
        return mark_safe("")
    _library_sent.set(True)
    # A figure drawn while the page is still laying out can take the wrong width: once the page
    # has loaded, every chart is fitted to its box.
    return format_html(
        '<script src="{}"></script><script>window.addEventListener("load", function () {{'
        ' document.querySelectorAll(".evalgate-chart .plotly-graph-div").forEach(function (d) {{'
        " Plotly.Plots.resize(d); }}); }});</script>",
        static(PLOTLY_JS),
    )


def render(figure: Any, *, height: int = 360) -> SafeString:
    """The HTML of one figure (a div with class evalgate-chart and its Plotly.newPlot script)."""
    figure.update_layout(height=height, margin={"l": 50, "r": 20, "t": 50, "b": 50}, template="plotly_white")
    html = figure.to_html(full_html=False, include_plotlyjs=False, config=CONFIG)
    # plotly escapes the figure's data as JSON inside its own script: safe to mark as such.
    return mark_safe(f'{library_tag()}<div class="evalgate-chart">{html}</div>')


def empty(message: str) -> SafeString:
    """What a chart slot says when there is nothing to draw yet."""
    return format_html('<p class="evalgate-chart-empty">{}</p>', message)


class ChartsMiddleware:
    """Each request starts with plotly.js not yet on its page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _library_sent.set(False)
        try:
            return self.get_response(request)
        finally:
            _library_sent.reset(token)
