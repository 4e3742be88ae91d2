from django.apps import AppConfig


class GradingAppConfig(AppConfig):
    name = "grading_app"
    verbose_name = "Grading"

    def ready(self) -> None:
        from grading_app import receivers  # noqa: F401  (rubric owner changes -> audit log)
        from grading_app.gradeability import register_with_datasets

        register_with_datasets()
