"""``{% evalgate_dashboard %}``: the admin index's summary of gates, runs and review work."""

from typing import Any

from django import template

from gates_app.dashboard import dashboard_context

register = template.Library()


@register.inclusion_tag("admin/gates_app/dashboard.html", takes_context=True)
def evalgate_dashboard(context: template.Context) -> dict[str, Any]:
    return dashboard_context(context["request"].user)
