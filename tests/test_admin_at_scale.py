"""Admin changelists and a check's page run as many queries at 100,000 rows as at 10 (issue 16).

Every changelist of a table that grows with use is here, each at 10 rows and at 100,000; the
other registered tables are configuration of a handful of rows (EXCLUDED says which and why),
and a test walks the admin's registry so a new changelist is covered or excluded on purpose.
Rows are written by one INSERT ... SELECT over a series of numbers (or over the ids of their
parent rows), not through the ORM: 100,000 rows take about a second on either database, and
the whole module under a minute with the test database's creation.
"""

import math
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib import admin
from django.db import connection, models, transaction
from django.db.models import F, Max, QuerySet
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit_app.models import AuditEvent
from datasets_app.choices import CaseStatus, PinnedChange, RequestStatus, Tier
from datasets_app.models import Case, Incident, PinnedCaseRequest
from gates_app.choices import CheckStatus, Verdict
from gates_app.models import Check, DeployToken
from gates_app.services import request_check
from grading_app.choices import RunStatus
from grading_app.models import CaseResult, Grade, HumanLabel, RubricVersion, Run
from monitoring_app.choices import SampleStatus
from monitoring_app.models import Alert, AlertRule, MonitorSample, Trace
from tests.factories import (
    make_case,
    make_dataset,
    make_endpoint,
    make_failure_class,
    make_gate,
    make_grader,
    make_monitor,
    make_scenario,
    make_source,
    make_user,
    outputs_for,
)

pytestmark = pytest.mark.django_db

SMALL, LARGE = 10, 100_000
KEY = "'row-' || CAST(i AS TEXT)"  # a unique text per row number, for unique columns

# Registered tables whose changelist is not tested here, and why.
EXCLUDED = {
    "auth.Group": "the roles: a handful, created by a migration",
    "auth.User": "the people of one team: hundreds at most",
    "django_rq.Dashboard": "a link to django-rq's queue pages, not a table",
    "datasets_app.Dataset": "configuration: a handful of datasets",
    "datasets_app.FailureClass": "configuration: tens of failure classes",
    "grading_app.Endpoint": "configuration: a few model endpoints",
    "grading_app.Target": "configuration: a few systems under test",
    "grading_app.Grader": "configuration: tens of graders",
    "grading_app.Rubric": "configuration: a few rubrics (their versions are tested)",
    "monitoring_app.Source": "configuration: a few trace sources",
    "monitoring_app.Monitor": "configuration: a few monitors",
    "gates_app.Gate": "configuration: a few gates",
    "gates_app.GateRule": "configuration: a few rules per gate",
}
# Growing tables with no changelist of their own (so nothing to test here): check decisions
# (the check page's approval trail, a few per check), run chunks (the run page's inline),
# submitted outputs, judge cache entries, rubric version events, pending spans, trace grades
# (the sample page's inline), window rollups, check upload pages and alert rules.


@pytest.fixture
def root(client):
    user = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def fill(
    model: type[models.Model],
    template: models.Model,
    *,
    first: int = 1,
    count: int = 0,
    over: QuerySet | None = None,
    vary: dict[str, str] | None = None,
) -> None:
    """Rows like ``template``, one per number ``i`` from ``first`` (``count`` of them), or one
    per row of ``over`` (a queryset of values named ``i``, ``j``), in one INSERT ... SELECT.
    ``vary`` gives columns (by attribute name) an SQL expression of ``i`` (and ``j``): unique
    keys, foreign keys to the ``over`` rows."""
    vary, last = vary or {}, first + count - 1
    postgres = connection.vendor == "postgresql"
    now = timezone.now()
    columns, values, params = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.attname in vary:
            values.append(vary[field.attname])
            continue
        value = getattr(template, field.attname)
        if value is None and (getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)):
            value = now  # as pre_save() would set it
        params.append(field.get_db_prep_save(value, connection))
        # PostgreSQL types a bare parameter in a SELECT list as text; SQLite needs no type
        # (and would read CAST(... AS datetime) as a number).
        values.append(f"CAST(%s AS {field.db_type(connection)})" if postgres else "%s")
    if over is not None:
        sql, series_params = over.query.sql_with_params()
        series = f"WITH numbered AS ({sql})"
    elif postgres:
        series, series_params = "WITH numbered(i) AS (SELECT generate_series(%s, %s))", (first, last)
    else:
        series = "WITH RECURSIVE numbered(i) AS (SELECT %s UNION ALL SELECT i + 1 FROM numbered WHERE i < %s)"
        series_params = (first, last)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"{series} INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM numbered",
            [*series_params, *params],
        )


def rows_like(
    model: type[models.Model], template: models.Model, vary: dict[str, str] | None = None
) -> Callable[[int, int], None]:
    """grow(first, count): ``count`` rows like ``template``, numbered from ``first``."""

    def grow(first: int, count: int) -> None:
        fill(model, template, first=first, count=count, vary=vary)

    return grow


def newer(model: type[models.Model], mark: int) -> QuerySet:
    """The ids (as ``i``) of the rows written since ``mark``, for ``fill(over=...)``."""
    return model.objects.filter(pk__gt=mark).order_by().values(i=F("pk"))


def last_pk(model: type[models.Model]) -> int:
    return model.objects.aggregate(last=Max("pk"))["last"] or 0


def queries_of(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return [q["sql"] for q in queries.captured_queries]


def assert_constant(
    client, url: str, grow: Callable[[int, int], None], table: type[models.Model], expected: int
) -> None:
    """The page's queries with SMALL rows in ``table``, then with LARGE: ``expected`` both times."""
    with transaction.atomic():
        grow(1, SMALL)
        client.get(url)  # warms the per-process caches (content types) both measurements then share
        small = queries_of(client, url)
        grow(SMALL + 1, LARGE - SMALL)
        assert table._default_manager.count() >= LARGE
        large = queries_of(client, url)
        # Back to the savepoint: PostgreSQL drops the rows with their deferred foreign-key
        # checks, which the test's teardown would otherwise run row by row (seconds a table).
        transaction.set_rollback(True)
    shown = "\n\n".join(f"{n}. {sql}" for n, sql in enumerate(large, 1))
    assert len(small) == len(large), f"{len(small)} at {SMALL} rows, {len(large)} at {LARGE}:\n{shown}"
    assert len(large) == expected, f"{len(large)} queries, not {expected}:\n{shown}"


def changelist(model: type[models.Model]) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def test_every_registered_changelist_is_tested_or_excluded_with_a_reason():
    tested = {
        f"{m._meta.app_label}.{m.__name__}"
        for m in [
            *(AuditEvent, Case, PinnedCaseRequest, Incident, Run, CaseResult, Grade, HumanLabel),
            *(RubricVersion, Trace, MonitorSample, Alert, Check, DeployToken),
        ]
    }
    registered = {model._meta.label for model in admin.site._registry}
    assert registered - tested - set(EXCLUDED) == set(), "a new changelist: test it here or exclude it"
    assert tested | set(EXCLUDED) <= registered, "stale names"


# The rows behind the changelists, each grown by ``grow(first, count)``.


def case_rows(dataset, failure_class) -> Callable[[int, int], None]:
    template = Case(
        dataset=dataset,
        failure_class=failure_class,
        tier=Tier.TRUSTED,
        status=CaseStatus.ACTIVE,
        input={"messages": [{"role": "user", "content": "Can I get a refund after 40 days?"}]},
        expected={"answer": "No"},
    )
    return rows_like(Case, template, vary={"key": KEY})


def result_rows(failure_class, *, run: Run | None = None, **fields) -> Callable[[int, int], None]:
    """grow(first, count): ``count`` case results. Of ``run``, one per new case of its dataset;
    without, of new runs times new cases of a new dataset, about the square root of ``count`` of
    each (100,000 results of 317 runs and 316 cases: far fewer rows to write than 100,000 cases)."""
    shared = {"case_revision": 1, "output": "No", "latency_ms": 800, **fields}

    def grow(first: int, count: int) -> None:
        if run is not None:
            mark = last_pk(Case)
            case_rows(run.dataset, failure_class)(first, count)
            fill(CaseResult, CaseResult(run=run, **shared), over=newer(Case, mark), vary={"case_id": "i"})
            return
        dataset, side = make_dataset(), math.isqrt(count - 1) + 1
        case_rows(dataset, failure_class)(first, side)
        rows_like(Run, Run(dataset=dataset, candidate="v1", status=RunStatus.SUCCEEDED))(first, side)
        runs = Run.objects.filter(dataset=dataset).order_by()
        pairs = runs.values(i=F("pk"), j=F("dataset__cases__pk"))[:count]
        fill(CaseResult, CaseResult(**shared), over=pairs, vary={"run_id": "i", "case_id": "j"})

    return grow


def grade_rows(failure_class, grader, *, run: Run | None = None) -> Callable[[int, int], None]:
    results = result_rows(failure_class, run=run)
    template = Grade(grader=grader, passed=False, score=0.0, rationale="expected No")

    def grow(first: int, count: int) -> None:
        mark = last_pk(CaseResult)
        results(first, count)
        fill(Grade, template, over=newer(CaseResult, mark), vary={"case_result_id": "i"})

    return grow


# The pages. Each lists its queries; all start with the same two:
#   1. the session
#   2. the logged-in user (a superuser, so no permission queries)


def test_audit_event_changelist(client, root):
    #   3. the users who acted (the actor filter lists only them: bounded by the team)
    #   4. COUNT(*) of the events
    #   5. the page of 100 events
    #   6. the first and last event's time (date hierarchy)
    #   7. the days with events (date hierarchy: they span less than a month)
    #   8. the actions (filter)
    #   9. the object types (filter)
    template = AuditEvent(
        created_at=timezone.now(),
        actor=root,
        actor_username="root",
        action="case.audited",
        object_type="datasets_app.case",
        object_id="1",
        object_repr="refund-40-days",
        reason="checked against the policy",
        prev_hash="",
    )
    grow = rows_like(AuditEvent, template, vary={"hash": KEY})
    assert_constant(client, changelist(AuditEvent), grow, AuditEvent, expected=9)


def test_case_changelist(client, root):
    #   3. the datasets (filter)
    #   4. the failure classes (filter)
    #   5. COUNT(*) of the cases (show_full_result_count is off: no second, unfiltered count)
    #   6. the page of 100 cases, joined to dataset and failure class
    grow = case_rows(make_dataset(), make_failure_class())
    assert_constant(client, changelist(Case), grow, Case, expected=6)


def test_case_history_page(client, root):
    #   3. the case
    #   4. COUNT(*) of its history rows (the page is paginated by 100)
    #   5. the page of 100 history rows, joined to the users and objects they name
    case = make_case(make_dataset())
    history = Case.history.model
    template = case.history.first()
    grow = rows_like(history, template)
    url = reverse("admin:datasets_app_case_history", args=[case.pk])
    assert_constant(client, url, grow, history, expected=5)


def test_pinned_case_request_changelist(client, root):
    #   3. the datasets (filter)
    #   4. COUNT(*) of the requests
    #   5. COUNT(*) of all requests (show_full_result_count: a few per pinned case)
    #   6. the page of requests, joined to case and users
    case = make_case(make_dataset())  # pinned once; these rows only name it
    template = PinnedCaseRequest(
        case=case,
        change=PinnedChange.UNPIN,
        reason="the incident is fixed for good",
        status=RequestStatus.DECLINED,  # one open request per case at most: these are decided
        requested_by=root,
        decided_by=root,
        decided_at=timezone.now(),
    )
    grow = rows_like(PinnedCaseRequest, template)
    assert_constant(client, changelist(PinnedCaseRequest), grow, PinnedCaseRequest, expected=6)


def test_incident_changelist(client, root):
    #   3. the datasets (filter)
    #   4. COUNT(*) of the incidents
    #   5. the page of incidents, joined to dataset and reporter
    #   6. the regression cases of the page's incidents (prefetch)
    template = Incident(title="Refund promised after 40 days", dataset=make_dataset(), reporter=root)
    grow = rows_like(Incident, template)
    assert_constant(client, changelist(Incident), grow, Incident, expected=6)


def test_run_changelist(client, root):
    #   3. the datasets (filter)
    #   4. COUNT(*) of the runs
    #   5. the page of runs, joined to dataset
    template = Run(dataset=make_dataset(), candidate="v1", status=RunStatus.SUCCEEDED, created_by=root)
    grow = rows_like(Run, template, vary={"candidate": KEY})
    assert_constant(client, changelist(Run), grow, Run, expected=5)


def test_case_result_changelist(client, root):
    #   3. the latest 10 runs (run filter)
    #   4. the graders (the grader and failing-grader filters share it)
    #   5. the failure classes (filter)
    #   6. COUNT(*) of the results
    #   7. the page of 100 results with their outcome (EXISTS subqueries), run, case, failure class
    #   8. the page's grades, for the column naming failing graders (prefetch)
    grow = result_rows(make_failure_class())
    assert_constant(client, changelist(CaseResult), grow, CaseResult, expected=8)


def test_grade_changelist(client, root):
    #   3. the graders (filter)
    #   4. COUNT(*) of the grades
    #   5. the page of grades, joined to case result and grader
    grow = grade_rows(make_failure_class(), make_grader())
    assert_constant(client, changelist(Grade), grow, Grade, expected=5)


def test_human_label_changelist(client, root):
    #   3. the rubrics (filter)
    #   4. COUNT(*) of the labels
    #   5. the page of labels, joined to grade and reviewer
    grades = grade_rows(make_failure_class(), make_grader())
    template = HumanLabel(reviewer=root, passed=True, note="the judge was right")

    def grow(first: int, count: int) -> None:
        mark = last_pk(Grade)
        grades(first, count)
        fill(HumanLabel, template, over=newer(Grade, mark), vary={"grade_id": "i"})

    assert_constant(client, changelist(HumanLabel), grow, HumanLabel, expected=5)


def test_rubric_version_changelist(client, root):
    #   3. whether the user owns some rubric (the decide actions; once per request)
    #   4. the rubrics (filter)
    #   5. COUNT(*) of the versions
    #   6. COUNT(*) of all versions (show_full_result_count: a few per rubric)
    #   7. the page of versions, joined to rubric and author
    from grading_app.services import save_rubric

    rubric = save_rubric(slug="helpfulness", name="Helpfulness", owner=root)
    template = RubricVersion(
        rubric=rubric,
        criteria="The answer is correct and polite.",
        endpoint=make_endpoint("http://127.0.0.1:9/v1"),
        model="judge-model",
        author=root,
    )
    grow = rows_like(RubricVersion, template, vary={"number": "i"})
    assert_constant(client, changelist(RubricVersion), grow, RubricVersion, expected=7)


def trace_rows(source) -> Callable[[int, int], None]:
    template = Trace(
        source=source,
        time=timezone.now(),
        release="v1",
        input={"messages": [{"role": "user", "content": "Can I get a refund after 40 days?"}]},
        output="No",
        latency_ms=800,
    )
    return rows_like(Trace, template, vary={"client_id": KEY})


def test_trace_changelist(client, root):
    #   3. the sources (filter)
    #   4. COUNT(*) of the traces
    #   5. the page of 100 traces, joined to source
    #   6. the first and last trace's time (date hierarchy)
    #   7. the days with traces (date hierarchy)
    assert_constant(client, changelist(Trace), trace_rows(make_source()), Trace, expected=7)


def test_monitor_sample_changelist(client, root):
    #   3. the monitors (filter)
    #   4. COUNT(*) of the samples
    #   5. the page of 100 samples, joined to monitor and trace
    #   6. the first and last sample's time (date hierarchy)
    #   7. the days with samples (date hierarchy)
    source = make_source()
    traces = trace_rows(source)
    template = MonitorSample(
        monitor=make_monitor(source),
        time=timezone.now(),
        release="v1",
        status=SampleStatus.GRADED,
        passed=False,
    )

    def grow(first: int, count: int) -> None:
        mark = last_pk(Trace)
        traces(first, count)
        fill(MonitorSample, template, over=newer(Trace, mark), vary={"trace_id": "i"})

    assert_constant(client, changelist(MonitorSample), grow, MonitorSample, expected=7)


def minutes_after_2026(expression: str) -> str:
    """An SQL timestamp ``expression`` minutes after 2026-01-01 (one alert per rule and window)."""
    if connection.vendor == "postgresql":
        return f"TIMESTAMPTZ '2026-01-01 00:00:00+00' + ({expression}) * INTERVAL '1 minute'"
    return f"datetime('2026-01-01 00:00:00', '+' || ({expression}) || ' minutes')"


def test_alert_changelist(client, root):
    #   3. the monitors (filter)
    #   4. COUNT(*) of the alerts (show_full_result_count is off)
    #   5. the page of alerts, joined to monitor, rule and acknowledging user
    #   6. the metrics (filter)
    monitor = make_monitor(make_source())
    rule = AlertRule.objects.create(monitor=monitor, name="latency", metric="latency_p95_ms", margin=100)
    start = timezone.now() - timedelta(days=1)
    template = Alert(
        monitor=monitor,
        rule=rule,
        metric="latency_p95_ms",
        window_end=start,
        reference_start=start,
        reference_end=start,
        value=1200.0,
        reference_value=800.0,
        difference=400.0,
        interval=[350.0, 450.0],
        n=500,
        reference_n=500,
    )
    vary = {"window_start": minutes_after_2026("i")}
    grow = rows_like(Alert, template, vary=vary)
    assert_constant(client, changelist(Alert), grow, Alert, expected=6)


def test_check_changelist(client, root):
    #   3. whether the user owns some gate (the approve and override actions; once per request)
    #   4. whether the user approves for some gate (the same)
    #   5. the gates (filter)
    #   6. COUNT(*) of the checks
    #   7. the page of checks, joined to gate, run and requester
    #   8. the page's decisions (prefetch)
    #   9. the co-owners of the page's gates (prefetch)
    template = Check(
        gate=make_gate(make_dataset()),
        status=CheckStatus.DONE,
        verdict=Verdict.PASS,
        release_allowed=True,
        requested_by_user=root,
    )
    grow = rows_like(Check, template, vary={"candidate": KEY})
    assert_constant(client, changelist(Check), grow, Check, expected=9)


def test_deploy_token_changelist(client, root):
    #   3. COUNT(*) of the tokens
    #   4. COUNT(*) of all tokens (show_full_result_count: tens of tokens)
    #   5. the page of tokens, joined to user and issuer
    #   6. the page's gates (prefetch)
    template = DeployToken(name="ci", secret_hash="0" * 64, scopes=["checks:write"], created_by=root)
    grow = rows_like(DeployToken, template, vary={"prefix": KEY})
    assert_constant(client, changelist(DeployToken), grow, DeployToken, expected=6)


def test_check_page(client, root, django_capture_on_commit_callbacks):
    # The cases behind the rules and the missing cases grow with the check's run.
    #   3. the check, joined to gate, run and requester (for the decision buttons)
    #   4. its decisions (prefetch)
    #   5. its gate's co-owners (prefetch)
    #   6. whether the user approves for the gate (may they approve?)
    #   7-9. the check, its decisions and co-owners again (the change view's own get_object)
    #  10. the run's failed and errored grades with their cases (the cases behind the rules)
    #  11. COUNT(*) of the run's missing or errored results
    #  12. the first 50 of them, with their case keys
    s = make_scenario(n_trusted=SMALL, n_monitoring=0)
    # Of its ten cases, two answered wrong (failing the block rule) and two got no output.
    outputs = outputs_for(s["cases"][4:]) + outputs_for(s["cases"][2:4], answer="Yes")
    with django_capture_on_commit_callbacks(execute=True):
        check, _ = request_check(gate=s["gate"], candidate="v1", outputs=outputs)
    check.refresh_from_db()
    assert check.rule_results and check.run.results.filter(missing=True).count() == 2
    failure_class = s["cases"][0].failure_class
    grades = grade_rows(failure_class, s["grader"], run=check.run)
    results = result_rows(failure_class, run=check.run, missing=True, output=None)

    def grow(first: int, count: int) -> None:
        if first == 1:
            return  # the check's own ten cases
        # Half the new cases failed the rule's grader, half produced nothing (missing).
        grades(first, count // 2)
        results(first + count // 2, count - count // 2)

    url = reverse("admin:gates_app_check_change", args=[check.pk])
    assert_constant(client, url, grow, CaseResult, expected=12)
