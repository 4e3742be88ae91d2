"""Online grading: monitors sample the traces as they are stored, and RQ jobs grade the samples
with the grader registry and the judge path that runs use (grading_app.execution, .judging).

A sample row is written in the transaction that stores its trace, and its job is enqueued
after commit; the job writes its grades once, under a row lock, so a job run twice (a worker
death, the periodic retry) never doubles a grade. Judge spend is bounded per monitor and hour.
"""

import datetime as dt
import hashlib
import logging
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Q
from django.db.models.fields.json import KT
from django.utils import timezone

from evalproject.queues import enqueue
from grading_app import graders, judging
from grading_app.execution import grade_code
from grading_app.models import Grader, RubricVersion
from grading_app.services.runs import rubric_version_for
from monitoring_app.choices import ReviewStatus, SampleStatus, Thumbs
from monitoring_app.models import Monitor, MonitorSample, Trace, TraceGrade
from monitoring_app.windows import monitor_traces

logger = logging.getLogger(__name__)

JOB_BATCH = 100  # samples per grading job
STALE_AFTER = dt.timedelta(minutes=5)  # a pending sample this old lost its job: enqueued again
NEGATIVE = Q(thumbs=Thumbs.DOWN) | Q(feedback_score__lt=0.5)
TRACE_METRICS = (
    "latency_ms", "ttft_ms", "input_tokens", "output_tokens", "cost_usd", "retries", "refused", "escalated",
)  # fmt: skip


def sampled(monitor_id: int, client_id: str, rate: float) -> bool:
    """Deterministic: the same trace is in or out of a monitor's sample however often it comes."""
    if rate >= 1:
        return True
    digest = hashlib.blake2b(f"{monitor_id}:{client_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64


def sample_traces(source_ids: set[int], trace_ids: list[int]) -> int:
    """Inside the storing transaction: each active monitor of these sources samples the new
    traces it watches (plus every one with negative feedback, for review); grading jobs are
    enqueued for after commit. Returns how many samples were taken."""
    if not trace_ids:
        return 0
    taken = 0
    for monitor in Monitor.objects.filter(source_id__in=source_ids, active=True):
        watched = (
            monitor_traces(monitor)
            .filter(pk__in=trace_ids)
            .annotate(
                failure_class=KT("metadata__failure_class"),
                negative=ExpressionWrapper(NEGATIVE, output_field=BooleanField()),
            )
            .values_list("pk", "client_id", "time", "release", "failure_class", "negative")
        )
        rows = []
        for pk, client_id, time, release, failure_class, negative in watched:
            in_sample = monitor.sample_rate > 0 and sampled(monitor.pk, client_id, monitor.sample_rate)
            if in_sample or negative:
                rows.append(
                    MonitorSample(
                        monitor=monitor,
                        trace_id=pk,
                        time=time,
                        release=release,
                        failure_class=str(failure_class or "")[:64],
                        in_sample=in_sample,
                    )
                )
        if not rows:
            continue
        MonitorSample.objects.bulk_create(rows, ignore_conflicts=True)
        ids = list(
            MonitorSample.objects.filter(
                monitor=monitor, trace_id__in=[r.trace_id for r in rows], status=SampleStatus.PENDING
            ).values_list("pk", flat=True)
        )
        enqueue_grading(monitor.pk, ids)
        taken += len(ids)
    return taken


def enqueue_grading(monitor_id: int, sample_ids: list[int], *, attempt: int = 1) -> None:
    for start in range(0, len(sample_ids), JOB_BATCH):
        batch = sorted(sample_ids[start : start + JOB_BATCH])
        job_id = f"monitor-{monitor_id}-samples-{batch[0]}-{batch[-1]}-a{attempt}"
        enqueue(grade_samples, batch, job_id=job_id, description=f"grade {len(batch)} traces")


def _grading_input(monitor: Monitor, trace: Trace) -> graders.GradingInput:
    return graders.GradingInput(
        case_input=trace.input if isinstance(trace.input, dict) else {"value": trace.input},
        expected=monitor.expected or {},
        output=trace.output,
        trace=trace.trace or [],
        metrics={name: getattr(trace, name) for name in TRACE_METRICS if getattr(trace, name) is not None},
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


def grade_samples(sample_ids: list[int]) -> None:
    """Job: grade pending samples (of one monitor) and write their grades once."""
    with transaction.atomic():
        pending = MonitorSample.objects.filter(pk__in=sample_ids, status=SampleStatus.PENDING)
        pending.update(attempts=F("attempts") + 1)
    samples = list(
        MonitorSample.objects.filter(pk__in=sample_ids, status=SampleStatus.PENDING).select_related(
            "trace", "monitor"
        )
    )
    if not samples:
        return
    by_monitor: dict[int, list[MonitorSample]] = defaultdict(list)
    for sample in samples:
        by_monitor[sample.monitor_id].append(sample)
    for monitor_samples in by_monitor.values():
        try:
            _grade_monitor_samples(monitor_samples[0].monitor, monitor_samples)
        except Exception as exc:
            logger.exception("grading samples of monitor %s failed", monitor_samples[0].monitor_id)
            _record_failure(monitor_samples, exc)
            raise


def _record_failure(samples: list[MonitorSample], exc: Exception) -> None:
    """A sample whose job failed stays pending for the periodic retry, until its attempts run out."""
    MonitorSample.objects.filter(
        pk__in=[s.pk for s in samples],
        status=SampleStatus.PENDING,
        attempts__gte=settings.EVALGATE_CHUNK_MAX_ATTEMPTS,
    ).update(status=SampleStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000])


def _grade_monitor_samples(monitor: Monitor, samples: list[MonitorSample]) -> None:
    monitor_graders = list(
        monitor.graders.filter(active=True)
        .select_related("rubric", "rubric_version")
        .prefetch_related("failure_classes")
    )
    grades: dict[int, list[TraceGrade]] = defaultdict(list)
    tasks: list[judging.JudgeTask] = []
    versions: dict[int, RubricVersion | None] = {}
    for sample in samples:
        item = _grading_input(monitor, sample.trace)
        for grader in monitor_graders:
            if not _applies(grader, sample.failure_class):
                continue
            kind = graders.get_kind(grader.kind)
            if kind.needs_rubric:
                if grader.pk not in versions:
                    versions[grader.pk] = rubric_version_for(grader)
                version = versions[grader.pk]
                if version is None or not version.is_approved:
                    grades[sample.pk].append(
                        TraceGrade(
                            grader=grader,
                            error="the grader's rubric has no approved version: production traffic "
                            "is judged only by signed-off rubrics",
                        )
                    )
                    continue
                prompt = judging.render_prompt(version, item, grader.config)
                tasks.append(judging.JudgeTask(ref=(sample.pk, grader.pk), version=version, prompt=prompt))
                continue
            grade = grade_code(kind, {"id": grader.pk, "slug": grader.slug, "config": grader.config}, item)
            if grade is not None:
                grades[sample.pk].append(
                    TraceGrade(
                        grader_id=grader.pk,
                        score=grade.score,
                        passed=grade.passed,
                        rationale=grade.rationale,
                        error=grade.error,
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
                TraceGrade(
                    grader_id=grader_id,
                    rubric_version=task.version,
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
                TraceGrade(
                    grader_id=grader_id,
                    rubric_version=task.version,
                    error=f"not judged: the monitor's budget of {monitor.judge_calls_per_hour} "
                    "judge calls an hour is spent",
                )
            )
        _write(samples, grades)


def _write(samples: list[MonitorSample], grades: dict[int, list[TraceGrade]]) -> None:
    """Write the grades of the samples still pending (under their row locks): once per sample."""
    with transaction.atomic():
        still = set(
            MonitorSample.objects.select_for_update()
            .filter(pk__in=[s.pk for s in samples], status=SampleStatus.PENDING)
            .values_list("pk", flat=True)
        )
        rows = []
        now = timezone.now()
        for sample in samples:
            if sample.pk not in still:
                continue  # another execution graded it: its grades stand
            decided = [g for g in grades[sample.pk] if not g.error and g.passed is not None]
            for grade in grades[sample.pk]:
                grade.sample_id = sample.pk
                rows.append(grade)
            sample.status = SampleStatus.GRADED
            sample.graded_at = now
            sample.passed = all(g.passed for g in decided) if decided else None
            trace = sample.trace
            negative = trace.thumbs == Thumbs.DOWN or (
                trace.feedback_score is not None and trace.feedback_score < 0.5
            )
            if sample.monitor.dataset_id and not sample.review and (sample.passed is False or negative):
                sample.review = ReviewStatus.WAITING
        TraceGrade.objects.bulk_create(rows, ignore_conflicts=True)
        MonitorSample.objects.bulk_update(
            [s for s in samples if s.pk in still], ["status", "graded_at", "passed", "review"]
        )


def retry_stale_samples(*, now: dt.datetime | None = None) -> int:
    """Periodic: samples whose job was lost (Redis down, a worker killed) are enqueued again; a
    sample out of attempts is marked failed. Returns how many were enqueued."""
    cutoff = (now or timezone.now()) - STALE_AFTER
    stale = MonitorSample.objects.filter(status=SampleStatus.PENDING, created_at__lt=cutoff)
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


def grade_summary(sample: MonitorSample) -> dict[str, Any]:
    """A sample's grades by grader slug, for the admin and the API."""
    return {
        g.grader.slug: {"passed": g.passed, "score": g.score, "rationale": g.rationale, "error": g.error}
        for g in sample.grades.select_related("grader")
    }
