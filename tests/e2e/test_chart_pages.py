"""Every admin page with charts draws them in a real browser, with data, from our own plotly.js.

Charts are div.evalgate-chart blocks holding a plotly figure (evalproject/charts.py); once
plotly.js has drawn one, its graph div carries the class js-plotly-plot and its traces in
``el.data``. A full-page screenshot of each page goes to test-artifacts/screenshots/.
"""

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.utils import timezone

from gates_app.choices import Verdict
from gates_app.services import request_check
from grading_app import services as grading
from grading_app.models import Grade
from monitoring_app import drift
from monitoring_app.ingest import store_records
from monitoring_app.models import AlertRule
from monitoring_app.records import parse_records
from tests.e2e.conftest import login
from tests.factories import (
    make_endpoint,
    make_grader,
    make_monitor,
    make_rubric_version,
    make_scenario,
    make_source,
    make_user,
)
from tests.fake_openai import FakeOpenAI, json_reply

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e

JUDGE_PASS = {"score": 1, "passed": True, "rationale": "Correct and polite."}
JUDGE_FAIL = {"score": 0, "passed": False, "rationale": "Too curt."}
# Spelled four ways: exact match passes them all (SQuAD normalisation), while the judge sees
# four different prompts, so it is asked four times and its grades differ.
ANSWERS = ["No", "no.", "NO!", "No "]

# Every plot drawn, each with at least one trace and an SVG; returns what the test reports.
RENDERED = """() => {
  const slots = [...document.querySelectorAll('div.evalgate-chart')];
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  return {
    slots: slots.length,
    drawnSlots: slots.filter(s => s.querySelector('.js-plotly-plot')).length,
    plots: plots.map(el => ({
      id: el.id,
      traces: (el.data || []).length,
      svg: !!el.querySelector('svg.main-svg'),
      title: (el.layout && el.layout.title && el.layout.title.text) || '',
    })),
  };
}"""
ALL_DRAWN = """() => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const slots = document.querySelectorAll('div.evalgate-chart').length;
  return plots.length >= slots && plots.every(el => el.data && el.data.length > 0);
}"""


@pytest.fixture
def charted(fake_openai: FakeOpenAI) -> dict[str, Any]:
    """A gate with two decided checks (so history and a baseline exist), graded by exact
    match and by an LLM judge whose grades a reviewer labelled; returns the ids to visit."""
    scenario = make_scenario(n_trusted=4, n_monitoring=2)
    endpoint = make_endpoint(fake_openai.base_url, price_in_per_mtok=1.0, price_out_per_mtok=2.0)
    version = make_rubric_version(endpoint, approved=True)
    make_grader("helpful", kind="llm_judge", rubric=version.rubric)
    fake_openai.script(json_reply(JUDGE_FAIL))
    fake_openai.default(json_reply(JUDGE_PASS, prompt_tokens=600, completion_tokens=40))

    def outputs(latency_ms: float) -> list[dict[str, Any]]:
        return [
            {"case": case.key, "output": ANSWERS[i % len(ANSWERS)], "metrics": {"latency_ms": latency_ms + i}}
            for i, case in enumerate(scenario["cases"])
        ]

    # Autocommit: each check's run is graded in-process as soon as it is created.
    first, _ = request_check(gate=scenario["gate"], candidate="v1", outputs=outputs(800))
    second, _ = request_check(gate=scenario["gate"], candidate="v2", outputs=outputs(2400))
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.verdict, second.verdict) == (Verdict.PASS, Verdict.WARN)

    reviewer = make_user("rita", roles=("Reviewer",), is_staff=True)
    judged = Grade.objects.filter(rubric_version=version, passed__isnull=False).order_by("pk")
    assert judged.count() == 2 * len(scenario["cases"])
    for grade in judged[:4]:
        grading.label_grade(grade, actor=reviewer, passed=True, note="Fine by me.")

    make_user("admin", is_staff=True, is_superuser=True)
    monitor = production_traffic(scenario["gate"])
    return {
        "monitor": monitor.pk,
        "dataset": scenario["dataset"].pk,
        "gate": scenario["gate"].pk,
        "check": second.pk,
        "run": second.run_id,
        "rubric_version": version.pk,
    }


def production_traffic(gate: Any) -> Any:
    """Two hours of a source's traffic, the refusal rate jumping in the second: a monitor with an
    alert rule and a grader, and the alert it fired."""
    source = make_source(gates=(gate,))
    monitor = make_monitor(source, graders=[make_grader("says-no", kind="contains")], sample_rate=0.5,
                           expected={"contains": ["No"]}, min_window_traces=100)  # fmt: skip
    AlertRule.objects.create(monitor=monitor, name="refusals", metric="refusal_rate", margin=0.02)
    now = timezone.now()
    start = drift.last_complete_window(monitor, now).start - dt.timedelta(hours=1)
    raw = [
        {
            "id": f"t{i}",
            "time": (start + dt.timedelta(seconds=i * 7.2)).isoformat(),
            "release": "v1" if i < 500 else "v2",
            "output": "I can't help with that." if i % (50 if i < 500 else 8) == 0 else "No.",
            "metrics": {"refused": i % (50 if i < 500 else 8) == 0, "latency_ms": 700 + i % 300},
        }
        for i in range(1000)
    ]
    records = parse_records(raw)
    store_records(records, [source] * len(records))
    assert [a.rule.name for a in drift.evaluate_monitor(monitor, now=now)] == ["refusals"]
    return monitor


# (page name, URL from the ids, the fewest charts the page draws with this data)
PAGES: list[tuple[str, Callable[[dict[str, Any]], str], int]] = [
    ("admin-index", lambda ids: "/admin/", 1),  # verdicts in the last 30 days
    ("dataset", lambda ids: f"/admin/datasets_app/dataset/{ids['dataset']}/change/", 2),
    ("run", lambda ids: f"/admin/grading_app/run/{ids['run']}/change/", 2),
    ("rubric-version", lambda ids: f"/admin/grading_app/rubricversion/{ids['rubric_version']}/change/", 1),
    ("gate", lambda ids: f"/admin/gates_app/gate/{ids['gate']}/change/", 2),
    ("check", lambda ids: f"/admin/gates_app/check/{ids['check']}/change/", 2),
    ("monitor", lambda ids: f"/admin/monitoring_app/monitor/{ids['monitor']}/change/", 2),
]


@pytest.mark.parametrize(("name", "url", "at_least"), PAGES, ids=[p[0] for p in PAGES])
def test_chart_page_draws_every_chart_with_data(
    charted: dict[str, Any],  # before ``page``: the data is built before the browser starts
    page: "Page",
    artifacts_dir: Path,
    name: str,
    url: Callable[[dict[str, Any]], str],
    at_least: int,
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, "admin")

    response = page.goto(url(charted))
    assert response is not None and response.status == 200, f"{name}: HTTP {response and response.status}"
    try:
        page.wait_for_selector(".js-plotly-plot", state="attached")
        page.wait_for_function(ALL_DRAWN)
    finally:
        # Whatever happened, the page as it stands is worth seeing.
        page.screenshot(path=str(artifacts_dir / f"{name}.png"), full_page=True)

    rendered = page.evaluate(RENDERED)
    assert not errors, f"{name}: JavaScript errors {errors}"
    assert rendered["drawnSlots"] == rendered["slots"], f"{name}: a chart slot was not drawn: {rendered}"
    assert len(rendered["plots"]) >= at_least, f"{name}: expected at least {at_least} charts: {rendered}"
    for plot in rendered["plots"]:
        assert plot["traces"] > 0 and plot["svg"], f"{name}: an empty chart: {plot}"
