"""Runs and their results: what a candidate produced and how each grader judged it."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from grading_app.choices import ChunkStatus, RunStatus, TargetKind
from grading_app.models.graders import Grader

MAX_TRIALS = 20  # repeated trials per case: enough for pass^k, bounded so a typo cannot explode a run


class Run(models.Model):
    """One evaluation of a candidate over a dataset; its state lives here, not in Redis."""

    dataset = models.ForeignKey("datasets_app.Dataset", on_delete=models.PROTECT, related_name="runs")
    tier = models.CharField(max_length=16, blank=True, help_text="Only this tier; blank: all.")
    target_kind = models.CharField(max_length=16, choices=TargetKind.choices, default=TargetKind.SUBMITTED)
    target = models.ForeignKey(
        "grading_app.Target",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="runs",
        help_text="Produces the outputs; empty for submitted outputs.",
    )
    candidate = models.CharField(max_length=200)
    trials = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TRIALS)],
        help_text="Times each case runs (a target) or is submitted (outputs with a trial number).",
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    # The graders as they were when the run started (id, slug, kind, config, failure
    # classes, history id): later edits to a grader never change what this run measured.
    grader_snapshot = models.JSONField(default=list, blank=True)
    # The persona rubric versions that play the simulated users of its multi-turn cases, pinned
    # when the run started (slug -> version id, null: none approved then): a version approved
    # mid-run never plays part of it, and the record says who played.
    persona_versions = models.JSONField(default=dict, blank=True)
    total_cases = models.PositiveIntegerField(default=0)
    done_cases = models.PositiveIntegerField(default=0)
    error_cases = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The latest finaliser job enqueued for the run, when it is not the first one (a retried
    # chunk and the reaper enqueue new ones): the reaper judges that one, by its heartbeat.
    finaliser_job_id = models.CharField(max_length=200, blank=True)
    # Embedded mode: the process whose memory holds the run's jobs (host:pid:start time). When
    # that process is gone, so are the jobs, and the reaper runs them again.
    inline_owner = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.candidate})"

    @property
    def is_finished(self) -> bool:
        return self.status in RunStatus.finished()


class RunChunk(models.Model):
    """A slice of a run's cases executed by one job; mirrors that job's state."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    case_ids = models.JSONField()
    status = models.CharField(max_length=16, choices=ChunkStatus.choices, default=ChunkStatus.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    job_id = models.CharField(max_length=100)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "index"],
                name="run_chunk_index_unique",
                violation_error_message="This run already has a chunk with this index.",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} chunk {self.index}"


class SubmittedOutput(models.Model):
    """An output uploaded with a run (target ``submitted``), matched to a case by key."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="submitted_outputs")
    case_key = models.CharField(max_length=200)
    trial = models.PositiveSmallIntegerField(default=1)
    output = models.JSONField(null=True)
    trace = models.JSONField(default=list)
    metrics = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "case_key", "trial"],
                name="submitted_output_unique_per_case_trial",
                violation_error_message="Only one output per case key and trial in a run.",
            ),
        ]

    def __str__(self) -> str:
        return self.case_key


class CaseResult(models.Model):
    """What the candidate produced for one case, with its production signals."""

    # No index of its own: the unique (run, case, trial) index serves every lookup by run, and
    # each index is written for every one of the run's thousands of results.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="results", db_index=False)
    case = models.ForeignKey("datasets_app.Case", on_delete=models.PROTECT, related_name="results")
    trial = models.PositiveSmallIntegerField(default=1, help_text="Which of the run's trials of the case.")
    case_revision = models.PositiveIntegerField()
    output = models.JSONField(null=True, blank=True)
    trace = models.JSONField(default=list, blank=True)
    missing = models.BooleanField(default=False, help_text="No output was produced or submitted.")
    error = models.TextField(blank=True)
    ttft_ms = models.FloatField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost_usd = models.FloatField(null=True, blank=True)
    tool_calls = models.PositiveIntegerField(default=0)
    # Names of the tools called, in order: compared with the baseline's to spot changed behaviour.
    tool_sequence = models.JSONField(default=list, blank=True)
    trace_steps = models.PositiveIntegerField(default=0)
    retries = models.PositiveIntegerField(default=0)
    refused = models.BooleanField(null=True, blank=True)
    escalated = models.BooleanField(null=True, blank=True)
    # True when the value above was filled in by grading_app.detectors because the system did not
    # report it: a detected refusal rate is a lower bound (benchmarks/README.md), a reported one
    # is the system's own word.
    refused_detected = models.BooleanField(
        default=False, db_default=False, help_text="refused was detected, not reported."
    )
    escalated_detected = models.BooleanField(
        default=False, db_default=False, help_text="escalated was detected, not reported."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "case_id", "trial"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "case", "trial"],
                name="case_result_unique_per_run_trial",
                violation_error_message="A run has one result per case and trial.",
            ),
        ]

    def __str__(self) -> str:
        return f"result {self.pk}"


class Grade(models.Model):
    """One grader's verdict on one case result. Decided once; never edited."""

    # Indexed by the unique (case_result, grader) index; rubric_version only where it is set (a
    # judge's grade), below: a code grader's grade, most of them, writes two indexes fewer.
    case_result = models.ForeignKey(
        CaseResult, on_delete=models.CASCADE, related_name="grades", db_index=False
    )
    grader = models.ForeignKey(Grader, on_delete=models.PROTECT, related_name="grades")
    rubric_version = models.ForeignKey(
        "grading_app.RubricVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="grades",
        db_index=False,
    )
    score = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    rationale = models.TextField(blank=True)
    error = models.TextField(blank=True)
    raw_response = models.JSONField(null=True, blank=True, help_text="The judge's answer, as received.")
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost_usd = models.FloatField(null=True, blank=True)
    cached = models.BooleanField(default=False, help_text="Judge answer reused from the cache.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["case_result", "grader"]
        indexes = [
            models.Index(
                fields=["rubric_version"],
                condition=models.Q(rubric_version__isnull=False),
                name="grade_rubric_version_judged",
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["case_result", "grader"],
                name="grade_unique_per_result_and_grader",
                violation_error_message="A grader grades a result once.",
            ),
            models.CheckConstraint(
                condition=models.Q(score__isnull=True) | models.Q(score__gte=0, score__lte=1),
                name="grade_score_in_unit_interval",
                violation_error_message="A score lies between 0 and 1.",
            ),
        ]

    def __str__(self) -> str:
        return f"grade {self.pk}"
