from django.apps import AppConfig


class GradingAppConfig(AppConfig):
    name = "grading_app"
    verbose_name = "Grading"

    def ready(self) -> None:
        from django.core.signals import request_started

        from datasets_app import extensions
        from grading_app import receivers  # noqa: F401  (rubric owner changes -> audit log)
        from grading_app.gradeability import register_with_datasets
        from grading_app.import_plans import apply_plan, check_plan

        register_with_datasets()
        extensions.register_plan_part(check_plan, apply_plan)
        request_started.connect(_recover_once, dispatch_uid="grading_app.recover_lost_inline_runs")


def _recover_once(**kwargs: object) -> None:
    """The first request of a process in embedded mode runs what a killed process left behind."""
    from django.conf import settings
    from django.core.signals import request_started

    request_started.disconnect(dispatch_uid="grading_app.recover_lost_inline_runs")
    if not settings.REDIS_URL and settings.EVALGATE_RECOVER_ON_START:
        from grading_app.reaper import recover_at_start

        recover_at_start()
