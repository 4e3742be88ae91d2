"""gates_app's admin, one module per area under gates_app/admin_site/."""

from gates_app.admin_site import checks, gates, tokens  # noqa: F401  (registers the admins)
