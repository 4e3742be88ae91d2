"""Monitors sample stored traces deterministically and grade them with the runs' grader registry
and judge path; judge spend stays within the monitor's hourly budget; failures queue for review."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from monitoring_app import online
from monitoring_app.choices import ReviewStatus, SampleStatus
from monitoring_app.ingest import store_records
from monitoring_app.models import MonitorSample, TraceGrade
from monitoring_app.records import parse_records
from monitoring_app.services import save_monitor
from tests.factories import (
    make_dataset,
    make_endpoint,
    make_grader,
    make_monitor,
    make_rubric_version,
    make_source,
    make_user,
)
from tests.fake_openai import json_reply

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


def records(n, *, start=0, **fields):
    raw = [
        {
            "id": f"t-{i}",
            "time": (T0 + dt.timedelta(seconds=i)).isoformat(),
            "release": "v2",
            "input": {"messages": [{"role": "user", "content": f"Question {i}"}]},
            "output": fields.get("output", "Refunds are possible within 30 days."),
            **{k: v for k, v in fields.items() if k != "output"},
        }
        for i in range(start, start + n)
    ]
    return [r for i in range(0, n, 1000) for r in parse_records(raw[i : i + 1000])]


def store(source, recs, capture):
    with capture(execute=True):
        return store_records(recs, [source] * len(recs))


def test_sampling_is_deterministic_and_near_the_rate(django_capture_on_commit_callbacks):
    source = make_source()
    monitor = make_monitor(source, sample_rate=0.1)
    store(source, records(2000), django_capture_on_commit_callbacks)
    taken = set(MonitorSample.objects.filter(monitor=monitor).values_list("trace__client_id", flat=True))
    assert 150 <= len(taken) <= 250
    # The same ids decide the same way, whatever the order they come in.
    again = {f"t-{i}" for i in reversed(range(2000)) if online.sampled(monitor.pk, f"t-{i}", 0.1)}
    assert again == taken


def test_code_graders_grade_the_sample_and_failures_wait_for_the_dataset_owner(
    django_capture_on_commit_callbacks,
):
    source = make_source()
    dataset = make_dataset()
    contains = make_grader("mentions-days", kind="contains")
    not_contains = make_grader("no-promises", kind="not_contains")
    monitor = make_monitor(
        source,
        graders=[contains, not_contains],
        sample_rate=1.0,
        dataset=dataset,
        expected={"contains": ["30 days"], "not_contains": ["guarantee"]},
    )
    store(source, records(3), django_capture_on_commit_callbacks)
    store(
        source,
        records(1, start=3, output="We guarantee a refund within 90 days."),
        django_capture_on_commit_callbacks,
    )
    samples = {s.trace.client_id: s for s in MonitorSample.objects.filter(monitor=monitor)}
    assert set(samples) == {"t-0", "t-1", "t-2", "t-3"}
    assert all(s.status == SampleStatus.GRADED for s in samples.values())
    assert [samples[f"t-{i}"].passed for i in range(4)] == [True, True, True, False]
    bad = TraceGrade.objects.filter(sample=samples["t-3"]).order_by("grader__slug")
    assert [(g.grader.slug, g.passed) for g in bad] == [("mentions-days", False), ("no-promises", False)]
    assert "guarantee" in bad[1].rationale
    assert samples["t-3"].review == ReviewStatus.WAITING
    assert samples["t-0"].review == ""


def test_negative_feedback_is_graded_and_reviewed_but_kept_out_of_the_sample(
    django_capture_on_commit_callbacks,
):
    source = make_source()
    monitor = make_monitor(
        source, graders=[make_grader(kind="contains")], sample_rate=0.0, dataset=make_dataset(),
        expected={"contains": ["30 days"]},
    )  # fmt: skip
    store(source, records(5), django_capture_on_commit_callbacks)
    store(source, records(1, start=5, feedback={"thumbs": "down"}), django_capture_on_commit_callbacks)
    sample = MonitorSample.objects.get(monitor=monitor)
    assert sample.trace.client_id == "t-5"
    assert sample.in_sample is False and sample.passed is True
    assert sample.review == ReviewStatus.WAITING  # it passed the graders, but a user disliked it


def test_a_job_run_twice_writes_the_grades_once(django_capture_on_commit_callbacks):
    source = make_source()
    monitor = make_monitor(source, graders=[make_grader(kind="contains")], sample_rate=1.0,
                           expected={"contains": ["30"]})  # fmt: skip
    store(source, records(4), django_capture_on_commit_callbacks)
    ids = list(MonitorSample.objects.filter(monitor=monitor).values_list("pk", flat=True))
    MonitorSample.objects.filter(pk__in=ids).update(status=SampleStatus.PENDING)  # as if the job died
    online.grade_samples(ids)
    online.grade_samples(ids)
    assert TraceGrade.objects.filter(sample__monitor=monitor).count() == 4


def test_judges_stay_within_the_hourly_budget(fake_openai, django_capture_on_commit_callbacks):
    fake_openai.default(json_reply({"score": 1, "passed": True, "rationale": "Grounded."}))
    version = make_rubric_version(make_endpoint(fake_openai.base_url))
    judge = make_grader("grounded", kind="llm_judge", rubric=version.rubric)
    source = make_source()
    monitor = make_monitor(source, graders=[judge], sample_rate=1.0, judge_calls_per_hour=3)
    store(source, records(5), django_capture_on_commit_callbacks)
    grades = TraceGrade.objects.filter(sample__monitor=monitor)
    judged = [g for g in grades if not g.error]
    assert len(judged) == 3 and all(g.passed for g in judged)
    assert len(fake_openai.requests) == 3
    refused = [g for g in grades if g.error]
    assert len(refused) == 2 and "budget of 3 judge calls an hour" in refused[0].error
    assert online.judge_calls_used(monitor) == 3


def test_a_judge_without_an_approved_rubric_cannot_watch_production(fake_openai):
    version = make_rubric_version(make_endpoint(fake_openai.base_url), approved=False)
    judge = make_grader("draft-judge", kind="llm_judge", rubric=version.rubric)
    with pytest.raises(ValidationError, match="no approved rubric version"):
        make_monitor(make_source(), graders=[judge])


def test_only_the_owner_changes_a_monitor():
    owner = make_user(roles=("Gate owner",))
    other = make_user(roles=("Gate owner",))
    monitor = make_monitor(make_source(), owner=owner)
    monitor.sample_rate = 1.0
    with pytest.raises(PermissionDenied, match="owner"):
        save_monitor(monitor, actor=other)
    # Nor can the person editing turn the monitor over to someone else, or create one in another's name.
    monitor.refresh_from_db()
    monitor.owner = other
    with pytest.raises(PermissionDenied, match="superuser hands"):
        save_monitor(monitor, actor=owner)
    with pytest.raises(PermissionDenied, match="your own name"):
        make_monitor(make_source(), owner=owner, actor=other)
    monitor.refresh_from_db()
    assert monitor.owner == owner
    # A dataset owner sees monitors but sets none up.
    with pytest.raises(PermissionDenied, match="may not set up monitors"):
        make_monitor(make_source(), owner=make_user(roles=("Dataset owner",)))


def test_a_job_grades_its_monitors_backlog_and_leases_keep_two_jobs_apart(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    source = make_source()
    monitor = make_monitor(source, graders=[make_grader(kind="contains")], sample_rate=1.0,
                           expected={"contains": ["30"]})  # fmt: skip
    # Stored without running the jobs (as when Redis took them but no worker is up yet).
    recs = records(6)
    store_records(recs, [source] * len(recs))
    ids = sorted(MonitorSample.objects.filter(monitor=monitor).values_list("pk", flat=True))
    assert online.claim(ids[:1]) == ids  # a worker holds every pending sample of the monitor
    assert online.claim(ids[-1:]) == []  # another job takes none of them
    online.grade_samples(ids[-1:])  # still leased: nothing graded twice, nothing lost
    assert not TraceGrade.objects.exists()
    # The lease of a worker that died runs out; the periodic retry enqueues them again.
    past = timezone.now() - dt.timedelta(minutes=10)
    MonitorSample.objects.update(leased_until=past, created_at=past)
    with capture(execute=True):  # embedded mode: the enqueued jobs run at commit
        assert online.retry_stale_samples() == 6
    assert MonitorSample.objects.filter(status=SampleStatus.GRADED).count() == 6
    assert TraceGrade.objects.count() == 6


@pytest.mark.parametrize(
    "metadata_filter",
    [
        {"route": "refunds"},
        {"route": "refunds", "tier": 2},
        {"tier": 2.0},
        {"vip": True},
        {"nested": {"a": [1, "x"]}},
        {"contains": "x"},  # a key that spells a lookup is still a key
        {"a__b": 1},  # and so is one with a double underscore
        {"missing": None},
    ],
)
def test_sampling_in_memory_watches_exactly_the_traces_the_windows_count(metadata_filter):
    from django.db import connection

    from monitoring_app.windows import monitor_traces, watches

    if connection.vendor != "postgresql" and "vip" in metadata_filter:
        pytest.skip("SQLite's JSON reads true as 1: the database, not Evalgate, cannot tell them apart")
    source = make_source()
    variants = [
        {"route": "refunds", "tier": 2, "vip": True, "nested": {"a": [1, "x"]}, "contains": "x", "a__b": 1},
        {"route": "refunds", "tier": 2.0, "vip": 1, "nested": {"a": [1]}, "missing": None},
        {"route": "orders", "tier": "2", "vip": False, "contains": "y", "a": {"b": 1}},
        {},
    ]
    raw = [
        {"id": f"m-{i}", "time": T0.isoformat(), "release": "v2", "input": {"vars": {}}, "output": "ok",
         "metadata": metadata}
        for i, metadata in enumerate(variants)
    ]  # fmt: skip
    recs = parse_records(raw)
    store_records(recs, [source] * len(recs))
    monitor = make_monitor(source, sample_rate=1.0, metadata_filter=metadata_filter)
    counted = set(monitor_traces(monitor).values_list("client_id", flat=True))
    rows = source.traces.values("pk", "source_id", "client_id", "release", "metadata")
    assert {row["client_id"] for row in rows if watches(monitor, row)} == counted
    assert counted  # every filter above matches some variant
