from django.apps import AppConfig


class GatesAppConfig(AppConfig):
    name = "gates_app"
    verbose_name = "Gates"

    def ready(self) -> None:
        from datasets_app import extensions
        from gates_app import receivers  # noqa: F401  (connects run_finished, audits gate changes)
        from gates_app.import_plans import apply_plan, check_plan
        from gates_app.services import owns_gate_on_dataset

        extensions.register_pinned_confirmer(owns_gate_on_dataset)
        extensions.register_plan_part(check_plan, apply_plan)
