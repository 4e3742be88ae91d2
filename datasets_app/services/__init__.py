"""Every write that matters in datasets_app, one module per domain noun, re-exported here."""

from datasets_app.services.cases import (
    add_case,
    audit_case,
    audit_refusal,
    check_references,
    demote_case,
    edit_case,
    note_editor,
    promote_case,
    require_perm,
    restore_case,
    retire_case,
    return_case,
    save_failure_class,
    stamp,
    submit_case,
    validate_case_content,
)
from datasets_app.services.datasets import dataset_change_refusal, save_dataset, store_dataset
from datasets_app.services.imports import ImportSettings, check_import, export_cases, import_cases
from datasets_app.services.incidents import (
    convert_incident,
    dismiss_incident,
    report_incident,
    triage_incident,
)
from datasets_app.services.pinned import (
    confirm_pinned_change,
    decline_pinned_change,
    request_pinned_change,
    withdraw_pinned_change,
)

__all__ = [
    "ImportSettings",
    "add_case",
    "audit_case",
    "audit_refusal",
    "check_import",
    "check_references",
    "confirm_pinned_change",
    "convert_incident",
    "dataset_change_refusal",
    "decline_pinned_change",
    "demote_case",
    "dismiss_incident",
    "edit_case",
    "export_cases",
    "import_cases",
    "note_editor",
    "promote_case",
    "report_incident",
    "request_pinned_change",
    "require_perm",
    "restore_case",
    "retire_case",
    "return_case",
    "save_dataset",
    "save_failure_class",
    "stamp",
    "store_dataset",
    "submit_case",
    "triage_incident",
    "validate_case_content",
    "withdraw_pinned_change",
]
