"""grading_app's admin, one module per area under grading_app/admin_site/."""

from grading_app.admin_site import config, results, review, rubrics, runs  # noqa: F401  (registers the admins)
