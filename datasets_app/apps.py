from django.apps import AppConfig


class DatasetsAppConfig(AppConfig):
    name = "datasets_app"
    verbose_name = "Datasets"

    def ready(self) -> None:
        from datasets_app import receivers  # noqa: F401  (dataset owner changes enter the audit log)
