"""Every write that matters in datasets_app, one module per domain noun, re-exported here."""

from datasets_app.services.cases import (
    add_case,
    audit_case,
    demote_case,
    edit_case,
    promote_case,
    require_perm,
    retire_case,
    save_dataset,
    save_failure_class,
    stamp,
    submit_case,
    validate_case_content,
)
from datasets_app.services.imports import check_import, export_cases, import_cases
from datasets_app.services.incidents import (
    convert_incident,
    dismiss_incident,
    report_incident,
    triage_incident,
)

__all__ = [
    "add_case",
    "audit_case",
    "check_import",
    "convert_incident",
    "demote_case",
    "dismiss_incident",
    "edit_case",
    "export_cases",
    "import_cases",
    "promote_case",
    "report_incident",
    "require_perm",
    "retire_case",
    "save_dataset",
    "save_failure_class",
    "stamp",
    "submit_case",
    "triage_incident",
    "validate_case_content",
]
