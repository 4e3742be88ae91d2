from django.apps import AppConfig


class GradingAppConfig(AppConfig):
    name = "grading_app"
    verbose_name = "Grading"
