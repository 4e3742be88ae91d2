"""Every write that matters in grading_app, one module per domain noun, re-exported here."""

from grading_app.services.config_objects import save_endpoint, save_grader, save_target
from grading_app.services.labels import label_grade
from grading_app.services.rubrics import (
    approve_rubric_version,
    create_rubric_version,
    edit_rubric_version,
    reject_rubric_version,
    retire_rubric_version,
    save_rubric,
    sign_off_blocker,
    signers,
    submit_rubric_version,
    transition_refusal,
)
from grading_app.services.runs import (
    add_outputs,
    cancel_run,
    chunk_job_id,
    dispatch_run,
    finalise_job_id,
    open_run,
    rubric_version_for,
    snapshot_graders,
    start_run,
)

__all__ = [
    "add_outputs",
    "approve_rubric_version",
    "cancel_run",
    "chunk_job_id",
    "create_rubric_version",
    "dispatch_run",
    "edit_rubric_version",
    "finalise_job_id",
    "label_grade",
    "open_run",
    "reject_rubric_version",
    "retire_rubric_version",
    "rubric_version_for",
    "save_endpoint",
    "save_grader",
    "save_rubric",
    "save_target",
    "sign_off_blocker",
    "signers",
    "snapshot_graders",
    "start_run",
    "submit_rubric_version",
    "transition_refusal",
]
