"""datasets_app's admin, one module per area under datasets_app/admin_site/."""

from datasets_app.admin_site import cases, datasets, incidents  # noqa: F401  (registers the admins)
