from django.apps import AppConfig


class GatesAppConfig(AppConfig):
    name = "gates_app"
    verbose_name = "Gates"

    def ready(self) -> None:
        from gates_app import receivers  # noqa: F401  (connects run_finished)
