from django.apps import AppConfig


class DatasetsAppConfig(AppConfig):
    name = "datasets_app"
    verbose_name = "Datasets"

    def ready(self) -> None:
        from datasets_app import receivers  # noqa: F401  (dataset owner changes enter the audit log)
        from evalproject import lookups  # noqa: F401  (field__any_of, for every app's queries)
