from django.apps import AppConfig


class AuditAppConfig(AppConfig):
    name = "audit_app"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from audit_app import receivers  # noqa: F401  (user deletion guard, role changes)
