"""From a production trace back to the suite: an incident carrying it (then the pinned-case
path), or a draft monitoring case; flagged traces wait for the dataset owner. Each path
(service, admin, API, token) holds the same rules."""

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from datasets_app import services as datasets
from datasets_app.choices import CaseSource, CaseStatus, Tier
from datasets_app.models import Case, Incident
from monitoring_app.choices import ReviewStatus
from monitoring_app.ingest import store_records
from monitoring_app.models import MonitorSample, Trace
from monitoring_app.records import parse_records
from monitoring_app.services import dismiss_review, trace_to_case, trace_to_incident
from tests.factories import (
    make_dataset,
    make_failure_class,
    make_gate,
    make_grader,
    make_monitor,
    make_source,
    make_token,
    make_user,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(django_capture_on_commit_callbacks):
    dataset_owner = make_user("dso", roles=("Dataset owner",), is_staff=True)
    dataset = make_dataset(owner=dataset_owner)
    gate = make_gate(dataset)
    source = make_source("support-web", gates=(gate,))
    monitor = make_monitor(
        source,
        graders=[make_grader(kind="contains")],
        sample_rate=1.0,
        dataset=dataset,
        expected={"contains": ["30 days"]},
    )
    record = {
        "id": "req-77",
        "time": "2026-12-01T10:00:00Z",
        "release": "v7",
        "input": {"messages": [{"role": "user", "content": "Refund after 40 days?"}]},
        "output": "Sure, refunds are possible within 90 days.",
        "trace": [{"type": "tool_call", "name": "lookup_policy", "arguments": {"topic": "refunds"}}],
    }
    records = parse_records([record])
    with django_capture_on_commit_callbacks(execute=True):
        store_records(records, [source])
    return {
        "dataset": dataset,
        "dataset_owner": dataset_owner,
        "gate": gate,
        "monitor": monitor,
        "trace": Trace.objects.get(client_id="req-77"),
        "failure_class": make_failure_class("policy"),
    }


def test_a_failing_trace_waits_for_review_and_becomes_a_pinned_case_through_an_incident(world):
    sample = MonitorSample.objects.get(trace=world["trace"])
    assert sample.passed is False and sample.review == ReviewStatus.WAITING
    expert = make_user(roles=("Domain expert",))
    incident = trace_to_incident(
        world["trace"], actor=expert, title="Promised 90-day refunds", severity="high"
    )
    assert incident.input == world["trace"].input and incident.output.endswith("90 days.")
    assert incident.trace[0]["name"] == "lookup_policy"
    assert "req-77 of support-web (release v7" in incident.description
    sample.refresh_from_db()
    assert (sample.review, sample.reviewed_by) == (ReviewStatus.INCIDENT, expert)
    # The existing path takes it from there: triage, then a pinned trusted draft.
    owner = world["dataset_owner"]
    datasets.triage_incident(incident, actor=owner)
    case = datasets.convert_incident(
        incident, actor=owner, dataset=world["dataset"], failure_class=world["failure_class"],
        key="no-90-day-refunds", expected={"not_contains": ["90 days"]},
    )  # fmt: skip
    assert case.pinned and case.input == world["trace"].input and case.incident == incident


def test_a_trace_becomes_a_draft_monitoring_case_with_what_was_observed_as_context(world):
    expert = make_user(roles=("Domain expert",))
    case = trace_to_case(
        world["trace"], actor=expert, dataset=world["dataset"], failure_class=world["failure_class"]
    )
    assert (case.key, case.tier, case.status, case.source) == (
        "prod-support-web-req-77", Tier.MONITORING, CaseStatus.DRAFT, CaseSource.PRODUCTION,
    )  # fmt: skip
    assert case.expected == {}  # a person says what success looks like, never the observed output
    assert case.context["observed_output"].endswith("90 days.") and case.context["release"] == "v7"
    assert MonitorSample.objects.get(trace=world["trace"]).review == ReviewStatus.CASE
    with pytest.raises(PermissionDenied):
        trace_to_case(
            world["trace"], actor=make_user(roles=("Reviewer",)), dataset=world["dataset"],
            failure_class=world["failure_class"], key="other",
        )  # fmt: skip


def test_only_the_datasets_owner_dismisses_a_flagged_trace(world):
    sample = MonitorSample.objects.get(trace=world["trace"])
    other_owner = make_user(roles=("Dataset owner",))
    with pytest.raises(PermissionDenied, match="owner of the monitor's dataset"):
        dismiss_review(sample, actor=other_owner, note="not mine")
    with pytest.raises(PermissionDenied, match="may not review"):
        dismiss_review(sample, actor=world["monitor"].owner, note="I own the monitor")
    dismiss_review(sample, actor=world["dataset_owner"], note="known upstream bug, fixed in v8")
    sample.refresh_from_db()
    assert (sample.review, sample.review_note) == (ReviewStatus.DISMISSED, "known upstream bug, fixed in v8")
    with pytest.raises(PermissionDenied, match="not waiting"):
        dismiss_review(sample, actor=world["dataset_owner"])


def test_the_admin_buttons_follow_the_role(client, world):
    trace = world["trace"]
    expert = make_user(roles=("Domain expert",), is_staff=True)
    client.force_login(expert)
    page = client.get(reverse("admin:monitoring_app_trace_change", args=[trace.pk]))
    assert b"Report as an incident" in page.content and b"Add to a monitoring tier" in page.content
    response = client.post(
        reverse("admin:monitoring_app_trace_incident", args=[trace.pk]),
        {
            "title": "Wrong refund window",
            "severity": "high",
            "description": "",
            "dataset": "",
            "failure_class": "",
        },
    )
    incident = Incident.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/incident/{incident.pk}/change/")

    # A reviewer sees no trace at all; a gate owner reads traces but reports no incident.
    reviewer = make_user(roles=("Reviewer",), is_staff=True)
    client.force_login(reviewer)
    url = reverse("admin:monitoring_app_trace_incident", args=[trace.pk])
    assert client.post(url, {"title": "x", "severity": "low"}).status_code == 403
    gate_owner = make_user(roles=("Gate owner",), is_staff=True)
    client.force_login(gate_owner)
    page = client.get(reverse("admin:monitoring_app_trace_change", args=[trace.pk]))
    assert page.status_code == 200 and b"Report as an incident" not in page.content
    client.post(url, {"title": "sneaky", "severity": "low"})
    assert Incident.objects.count() == 1


def test_the_api_feeds_the_suite_within_a_tokens_reach(api_client, world):
    url = "/api/v1/traces/support-web/req-77/{}/"
    secret = make_token([world["gate"]], scopes=["incidents:write", "cases:write"])
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    made = api_client.post(url.format("incident"), {"title": "Wrong refund window"}, format="json", **auth)
    assert made.status_code == 201, made.json()
    assert Incident.objects.get().reporter == world["gate"].owner
    case = api_client.post(
        url.format("case"),
        {"dataset": world["dataset"].slug, "failure_class": "policy"},
        format="json",
        **auth,
    )
    assert case.status_code == 201, case.json()
    assert Case.objects.get(key=case.json()["key"]).contributed_by == world["gate"].owner

    # Another gate's token does not see the trace; a raw slug of a dataset out of reach is refused.
    stranger = make_token([make_gate(make_dataset())], scopes=["incidents:write", "cases:write"])
    other = {"HTTP_AUTHORIZATION": f"Bearer {stranger}"}
    assert api_client.post(url.format("incident"), {"title": "x"}, format="json", **other).status_code == 404
    other_dataset = make_dataset()
    refused = api_client.post(
        url.format("case"), {"dataset": other_dataset.slug, "failure_class": "policy", "key": "k2"},
        format="json", **auth,
    )  # fmt: skip
    assert refused.status_code == 400 and "dataset" in refused.json()["error"]["details"]
    read_only = make_token([world["gate"]], scopes=["checks:read"])
    assert (
        api_client.post(
            url.format("incident"), {"title": "x"}, format="json", HTTP_AUTHORIZATION=f"Bearer {read_only}"
        ).status_code
        == 403
    )
    assert Incident.objects.count() == 1 and Case.objects.filter(dataset=other_dataset).count() == 0


def test_the_sample_page_dismisses_for_the_datasets_owner_only(client, world):
    sample = MonitorSample.objects.get(trace=world["trace"])
    page = f"/admin/monitoring_app/monitorsample/{sample.pk}/change/"
    decide = f"/admin/monitoring_app/monitorsample/{sample.pk}/decide/dismiss/"
    other = make_user(roles=("Dataset owner",), is_staff=True)
    client.force_login(other)
    assert b"Dismiss this flagged trace" not in client.get(page).content
    client.post(decide, {"confirmed": "yes", "reason": "not mine"})
    sample.refresh_from_db()
    assert sample.review == ReviewStatus.WAITING
    client.force_login(world["dataset_owner"])
    assert b"Dismiss this flagged trace" in client.get(page).content
    assert client.post(decide, {"confirmed": "yes", "reason": "known, fixed in v8"}).status_code == 302
    sample.refresh_from_db()
    assert (sample.review, sample.review_note) == (ReviewStatus.DISMISSED, "known, fixed in v8")
