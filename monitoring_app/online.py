"""Online grading: monitors sample the traces as they are stored, and RQ jobs grade the samples
with the grader registry and the judge path that runs use (grading_app.execution, .judging).

A sample row is written in the transaction that stores its trace, and its job is enqueued
after commit; the job writes its grades once, under a row lock, so a job run twice (a worker
death, the periodic retry) never doubles a grade. Judge spend is bounded per monitor and hour.
"""

import datetime as dt
import hashlib
import json
import logging
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from evalproject.bulk import copy_insert
from evalproject.queues import enqueue
from grading_app import graders, judging
from grading_app.execution import grade_code
from grading_app.models import Grader, RubricVersion
from grading_app.services.runs import rubric_version_for
from monitoring_app.choices import ReviewStatus, SampleStatus, Thumbs
from monitoring_app.models import Monitor, MonitorSample, TraceGrade
from monitoring_app.windows import watches

logger = logging.getLogger(__name__)

JOB_BATCH = 100  # samples per grading job
CLAIM_MAX = 500  # samples a job grades at most: its own, and the backlog of their monitors
LEASE = dt.timedelta(minutes=5)  # a claimed sample is another job's again after this
STALE_AFTER = dt.timedelta(minutes=5)  # a pending sample this old lost its job: enqueued again
TRACE_METRICS = (
    "latency_ms", "ttft_ms", "input_tokens", "output_tokens", "cost_usd", "retries", "refused", "escalated",
)  # fmt: skip


def sampled(monitor_id: int, client_id: str, rate: float) -> bool:
    """Deterministic: the same trace is in or out of a monitor's sample however often it comes."""
    if rate >= 1:
        return True
    digest = hashlib.blake2b(f"{monitor_id}:{client_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64


def sample_traces(written: list[dict[str, Any]]) -> int:
    """Inside the storing transaction: each active monitor of the traces' sources samples the new
    traces it watches (plus every one with negative feedback, for review); grading jobs are
    enqueued for after commit. ``written`` are the stored traces' columns with their ``pk``:
    decided from them, without reading the traces back. Returns how many samples were taken."""
    if not written:
        return 0
    by_source: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in written:
        by_source[row["source_id"]].append(row)
    rows = []
    for monitor in Monitor.objects.filter(source_id__in=list(by_source), active=True):
        for row in by_source[monitor.source_id]:
            if not watches(monitor, row):
                continue
            in_sample = monitor.sample_rate > 0 and sampled(monitor.pk, row["client_id"], monitor.sample_rate)
            if in_sample or _negative(row):
                rows.append(
                    {
                        "monitor_id": monitor.pk,
                        "trace_id": row["pk"],
                        "time": row["time"],
                        "release": row["release"],
                        "failure_class": _failure_class(row.get("metadata")),
                        "in_sample": in_sample,
                    }
                )
    if not rows:
        return 0
    # The traces are new (stored in this transaction): no sample of them can exist yet.
    if connection.vendor == "postgresql":
        taken = copy_insert(MonitorSample, rows, returning=("monitor_id", "id"))
    else:
        created = MonitorSample.objects.bulk_create([MonitorSample(**row) for row in rows])
        taken = [(sample.monitor_id, sample.pk) for sample in created]
    by_monitor: dict[int, list[int]] = defaultdict(list)
    for monitor_id, pk in taken:
        by_monitor[monitor_id].append(pk)
    for monitor_id, ids in by_monitor.items():
        enqueue_grading(monitor_id, ids)
    return len(taken)


def _negative(row: dict[str, Any]) -> bool:
    """Negative feedback: thumbs down, or a score under 0.5."""
    score = row.get("feedback_score")
    return row.get("thumbs") == Thumbs.DOWN or (score is not None and score < 0.5)


def _failure_class(metadata: Any) -> str:
    """metadata.failure_class as text, as the database's ->> gives it."""
    value = metadata.get("failure_class") if isinstance(metadata, dict) else None
    if value is None:
        return ""
    return (value if isinstance(value, str) else json.dumps(value))[:64]


def enqueue_grading(monitor_id: int, sample_ids: list[int], *, attempt: int = 1) -> None:
    for start in range(0, len(sample_ids), JOB_BATCH):
        batch = sorted(sample_ids[start : start + JOB_BATCH])
        job_id = f"monitor-{monitor_id}-samples-{batch[0]}-{batch[-1]}-a{attempt}"
        enqueue(grade_samples, batch, job_id=job_id, description=f"grade {len(batch)} traces")


DETECTED = ("refused", "escalated")  # signals ingestion may have detected (Trace.*_detected)
SAMPLE_FIELDS = (
    "pk", "monitor_id", "failure_class", "review", "trace__input", "trace__output", "trace__trace",
    "trace__thumbs", "trace__feedback_score", *(f"trace__{name}" for name in TRACE_METRICS),
    *(f"trace__{name}_detected" for name in DETECTED),
)  # fmt: skip


def _reported(sample: dict[str, Any], name: str) -> bool:
    # A detected value is not the system's word: graders see only what it reported, as in a run
    # (where metrics are the target's), so a refusal grader with its own phrases still reads them.
    return sample[f"trace__{name}"] is not None and not sample.get(f"trace__{name}_detected")


def _grading_input(monitor: Monitor, sample: dict[str, Any]) -> graders.GradingInput:
    """What the graders see of a sampled trace (read as plain values: no model instances)."""
    trace_input = sample["trace__input"]
    return graders.GradingInput(
        case_input=trace_input if isinstance(trace_input, dict) else {"value": trace_input},
        expected=monitor.expected or {},
        output=sample["trace__output"],
        trace=sample["trace__trace"] or [],
        metrics={name: sample[f"trace__{name}"] for name in TRACE_METRICS if _reported(sample, name)},
    )


def _applies(grader: Grader, failure_class: str) -> bool:
    classes = {fc.slug for fc in grader.failure_classes.all()}
    return not (classes and failure_class and failure_class not in classes)


def judge_calls_used(monitor: Monitor, *, now: dt.datetime | None = None) -> int:
    """Live (uncached) judge calls the monitor made in the last hour."""
    since = (now or timezone.now()) - dt.timedelta(hours=1)
    return TraceGrade.objects.filter(
        sample__monitor=monitor, rubric_version__isnull=False, cached=False, error="", created_at__gte=since
    ).count()


def claim(sample_ids: list[int], *, now: dt.datetime | None = None) -> list[int]:
    """Lease the job's samples and, under load, the other pending ones of the same monitors
    (oldest first, up to CLAIM_MAX): one job grades a backlog in one go, and two workers never
    grade the same sample at once. A lease that ran out (its worker died) may be claimed again."""
    now = now or timezone.now()
    with transaction.atomic():
        monitors = set(MonitorSample.objects.filter(pk__in=sample_ids).values_list("monitor_id", flat=True))
        free = Q(leased_until__isnull=True) | Q(leased_until__lt=now)
        ids = list(
            MonitorSample.objects.select_for_update(skip_locked=True)
            .filter(free, status=SampleStatus.PENDING, monitor_id__in=monitors)
            .order_by("pk")
            .values_list("pk", flat=True)[:CLAIM_MAX]
        )
        MonitorSample.objects.filter(pk__in=ids).update(leased_until=now + LEASE, attempts=F("attempts") + 1)
    return ids


def grade_samples(sample_ids: list[int]) -> None:
    """Job: grade pending samples (and the backlog of their monitors) and write their grades once."""
    ids = claim(sample_ids)
    if not ids:
        return  # another job took them (or they are graded): nothing to do
    samples = list(
        MonitorSample.objects.filter(pk__in=ids, status=SampleStatus.PENDING)
        .order_by("pk")
        .values(*SAMPLE_FIELDS)
    )
    by_monitor: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for sample in samples:
        by_monitor[sample["monitor_id"]].append(sample)
    monitors = Monitor.objects.in_bulk(list(by_monitor))
    for monitor_id, monitor_samples in by_monitor.items():
        try:
            _grade_monitor_samples(monitors[monitor_id], monitor_samples)
        except Exception as exc:
            logger.exception("grading samples of monitor %s failed", monitor_id)
            _record_failure([s["pk"] for s in monitor_samples], exc)
            raise


def _record_failure(sample_ids: list[int], exc: Exception) -> None:
    """A sample whose job failed stays pending for the periodic retry (once its lease ran out),
    until its attempts run out."""
    MonitorSample.objects.filter(
        pk__in=sample_ids, status=SampleStatus.PENDING, attempts__gte=settings.EVALGATE_CHUNK_MAX_ATTEMPTS
    ).update(status=SampleStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000])


def _grade(grader_id: int, **fields: Any) -> dict[str, Any]:
    return {"grader_id": grader_id, **fields}


def _grade_monitor_samples(monitor: Monitor, samples: list[dict[str, Any]]) -> None:
    monitor_graders = list(
        monitor.graders.filter(active=True)
        .select_related("rubric", "rubric_version")
        .prefetch_related("failure_classes")
    )
    grades: dict[int, list[dict[str, Any]]] = defaultdict(list)
    tasks: list[judging.JudgeTask] = []
    versions: dict[int, RubricVersion | None] = {}
    for sample in samples:
        item = _grading_input(monitor, sample)
        for grader in monitor_graders:
            if not _applies(grader, sample["failure_class"]):
                continue
            kind = graders.get_kind(grader.kind)
            if kind.needs_rubric:
                if not kind.reads(item.expected, kind.validate_config(grader.config)):
                    continue  # a judge of one expected key (an imported llm-rubric) reads only those
                if grader.pk not in versions:
                    versions[grader.pk] = rubric_version_for(grader)
                version = versions[grader.pk]
                if version is None or not version.is_approved:
                    grades[sample["pk"]].append(
                        _grade(
                            grader.pk,
                            error="the grader's rubric has no approved version: production traffic "
                            "is judged only by signed-off rubrics",
                        )
                    )
                    continue
                prompt = judging.render_prompt(version, item, grader.config)
                tasks.append(judging.JudgeTask(ref=(sample["pk"], grader.pk), version=version, prompt=prompt))
                continue
            grade = grade_code(kind, {"id": grader.pk, "slug": grader.slug, "config": grader.config}, item)
            if grade is not None:
                grades[sample["pk"]].append(
                    _grade(
                        grader.pk,
                        score=grade.get("score"),
                        passed=grade.get("passed"),
                        rationale=grade.get("rationale", ""),
                        error=grade.get("error", ""),
                    )
                )
    if not tasks:
        _write(samples, grades)
        return
    # Judges: the monitor's row lock is held from counting the hour's calls to writing the new
    # ones, so two workers cannot both spend the last of the budget.
    with transaction.atomic():
        Monitor.objects.select_for_update().filter(pk=monitor.pk).first()
        remaining = max(0, monitor.judge_calls_per_hour - judge_calls_used(monitor))
        cached_keys = judging.cached_keys([t.key for t in tasks])
        allowed, refused = [], []
        for task in tasks:
            if task.key in cached_keys or remaining > 0:
                allowed.append(task)
                remaining -= task.key not in cached_keys
            else:
                refused.append(task)
        outcomes = judging.run_judges(allowed) if allowed else {}
        for task in allowed:
            sample_id, grader_id = task.ref
            outcome = outcomes[task.ref]
            grades[sample_id].append(
                _grade(
                    grader_id,
                    rubric_version_id=task.version.pk,
                    score=outcome.score,
                    passed=outcome.passed,
                    rationale=outcome.rationale[:2000],
                    error=outcome.error[:2000],
                    raw_response=outcome.raw,
                    input_tokens=outcome.input_tokens,
                    output_tokens=outcome.output_tokens,
                    cost_usd=outcome.cost_usd,
                    cached=outcome.cached,
                )
            )
        for task in refused:
            sample_id, grader_id = task.ref
            grades[sample_id].append(
                _grade(
                    grader_id,
                    rubric_version_id=task.version.pk,
                    error=f"not judged: the monitor's budget of {monitor.judge_calls_per_hour} "
                    "judge calls an hour is spent",
                )
            )
        _write(samples, grades)


def _is_negative(sample: dict[str, Any]) -> bool:
    score = sample["trace__feedback_score"]
    return sample["trace__thumbs"] == Thumbs.DOWN or (score is not None and score < 0.5)


def _write(samples: list[dict[str, Any]], grades: dict[int, list[dict[str, Any]]]) -> None:
    """Write the grades of the samples still pending (under their row locks): once per sample."""
    with transaction.atomic():
        still = set(
            MonitorSample.objects.select_for_update()
            .filter(pk__in=[s["pk"] for s in samples], status=SampleStatus.PENDING)
            .values_list("pk", flat=True)
        )
        rows = []
        by_outcome: dict[tuple[Any, str], list[int]] = defaultdict(list)
        reviewed = {
            m.pk
            for m in Monitor.objects.filter(pk__in={s["monitor_id"] for s in samples}, dataset__isnull=False)
        }
        for sample in samples:
            pk = sample["pk"]
            if pk not in still:
                continue  # another execution graded it: its grades stand
            decided = [g for g in grades[pk] if not g.get("error") and g.get("passed") is not None]
            rows += [{"sample_id": pk, **grade} for grade in grades[pk]]
            passed = all(g["passed"] for g in decided) if decided else None
            review = sample["review"]
            if sample["monitor_id"] in reviewed and not review and (passed is False or _is_negative(sample)):
                review = ReviewStatus.WAITING
            by_outcome[passed, review].append(pk)
        if connection.vendor == "postgresql":
            copy_insert(TraceGrade, rows, skip_conflicts_on=("sample_id", "grader_id"))
        else:
            TraceGrade.objects.bulk_create([TraceGrade(**row) for row in rows], ignore_conflicts=True)
        # One UPDATE per outcome, not a CASE per row: a batch has few distinct outcomes.
        now = timezone.now()
        for (passed, review), ids in by_outcome.items():
            MonitorSample.objects.filter(pk__in=ids).update(
                status=SampleStatus.GRADED, graded_at=now, passed=passed, review=review, leased_until=None
            )


def retry_stale_samples(*, now: dt.datetime | None = None) -> int:
    """Periodic: samples whose job was lost (Redis down, a worker killed) are enqueued again; a
    sample out of attempts is marked failed. Returns how many were enqueued."""
    now = now or timezone.now()
    free = Q(leased_until__isnull=True) | Q(leased_until__lt=now)  # no job holds it now
    stale = MonitorSample.objects.filter(free, status=SampleStatus.PENDING, created_at__lt=now - STALE_AFTER)
    stale.filter(attempts__gte=settings.EVALGATE_CHUNK_MAX_ATTEMPTS).update(
        status=SampleStatus.FAILED, error="grading did not complete within its attempts"
    )
    by_monitor: dict[int, list[int]] = defaultdict(list)
    rows = stale.filter(attempts__lt=settings.EVALGATE_CHUNK_MAX_ATTEMPTS).values_list(
        "monitor_id", "pk", "attempts"
    )[:10_000]
    attempts: dict[int, int] = {}
    for monitor_id, pk, attempt in rows:
        by_monitor[monitor_id].append(pk)
        attempts[monitor_id] = max(attempts.get(monitor_id, 0), attempt)
    with transaction.atomic():
        for monitor_id, ids in by_monitor.items():
            enqueue_grading(monitor_id, ids, attempt=attempts[monitor_id] + 1)
    return sum(len(ids) for ids in by_monitor.values())
