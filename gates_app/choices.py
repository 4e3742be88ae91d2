"""Enumerations shared by the gates models, evaluation, admin and API."""

from django.db import models


class Verdict(models.TextChoices):
    PENDING = "pending", "Pending"
    PASS = "pass", "Pass"
    WARN = "warn", "Warn"
    FAIL = "fail", "Fail"
    INCONCLUSIVE = "inconclusive", "Inconclusive"


# A post-release verdict is always decided: never pending.
PRODUCTION_VERDICTS = [(value, label) for value, label in Verdict.choices if value != Verdict.PENDING]


class CheckStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"


class Severity(models.TextChoices):
    BLOCK = "block", "Block"
    WARN = "warn", "Warn"
    INSPECT = "inspect", "Inspect"


class RuleMode(models.TextChoices):
    ABSOLUTE = "absolute", "Absolute threshold"
    NO_REGRESSION = "no_regression", "No regression vs baseline"


class RuleStage(models.TextChoices):
    RELEASE = "release", "Before release (a check's run)"
    PRODUCTION = "production", "After release (live traffic)"


class Direction(models.TextChoices):
    MIN = "min", "At least the threshold"
    MAX = "max", "At most the threshold"


class DecideOn(models.TextChoices):
    POINT = "point", "Point value"
    INTERVAL = "interval", "Whole 95% interval"


class Outcome(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    UNDECIDED = "undecided", "Undecided"


class DecisionKind(models.TextChoices):
    APPROVE = "approve", "Approved (warn acknowledged)"
    OVERRIDE = "override", "Overridden by the owner"


class Scope(models.TextChoices):
    """Deploy-token scopes (DESIGN.md section 6)."""

    CHECKS_WRITE = "checks:write", "Request checks"
    CHECKS_READ = "checks:read", "Read checks and gates"
    INCIDENTS_WRITE = "incidents:write", "Report incidents"
    CASES_WRITE = "cases:write", "Add draft cases"
    TRACES_WRITE = "traces:write", "Send production traces"
