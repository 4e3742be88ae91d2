"""Repeated trials (issue 14): a case run k times (a target) or submitted k times (outputs with a
`trial`), pass@k, pass^k and consistency in the summary and as gate rules, a flaky target told
apart from a reliable one."""

import json
from collections import Counter

import pytest
from django.core.exceptions import ValidationError

from datasets_app.models import Case
from grading_app.models import CaseResult, Grade, Run
from grading_app.outputs import parse_outputs
from grading_app.services import save_target, start_run
from tests.factories import make_case, make_dataset, make_endpoint, make_grader, make_scenario, make_token
from tests.fake_openai import text

pytestmark = pytest.mark.django_db


def submitted(case: str, output: str | None, trial: int) -> dict:
    return {"case": case, "output": output, "trial": trial}


@pytest.fixture
def three_cases():
    dataset = make_dataset()
    for key in ("steady", "flaky", "gappy"):
        make_case(dataset, key)
    make_grader("answer-exact")  # every case expects "No"
    return dataset


def test_submitted_trials_are_stored_per_trial_and_summarised_per_case(
    three_cases, django_capture_on_commit_callbacks
):
    outputs = parse_outputs(
        [
            *(submitted("steady", "No", t) for t in (1, 2, 3)),
            submitted("flaky", "No", 1),
            submitted("flaky", "Yes", 2),
            submitted("flaky", "No", 3),
            submitted("gappy", "No", 1),  # trial 2 never submitted
            submitted("gappy", "Yes", 3),
        ]
    )
    with django_capture_on_commit_callbacks(execute=True):  # the jobs run after commit
        run = start_run(dataset=three_cases, candidate="v1", outputs=outputs)
    run.refresh_from_db()
    assert run.trials == 3 and run.total_cases == 9 and run.done_cases == 9
    results = CaseResult.objects.filter(run=run)
    assert sorted(results.values_list("case__key", "trial")) == [
        (key, t) for key in ("flaky", "gappy", "steady") for t in (1, 2, 3)
    ]
    gap = results.get(case__key="gappy", trial=2)
    assert gap.missing and "trial 2" in gap.error
    assert Grade.objects.filter(case_result__run=run).count() == 8  # the missing trial has none

    trials = run.summary["trials"]
    assert trials["k"] == 3
    exact = trials["graders"]["answer-exact"]
    # gappy lacks a trial, so it is missing data for the per-case figures (never a pass):
    # steady passes 3 of 3, flaky 2 of 3.
    assert exact["cases"] == 2
    assert exact["pass_at_k"] == 1.0 and exact["pass_hat_k"] == 0.5
    assert exact["consistency"] == pytest.approx((1 + 2 / 3) / 2)
    assert exact["flaky_cases"] == 1 and exact["flaky"] == [{"case": "flaky", "passed": 2, "of": 3}]
    assert exact["pass_hat_k_interval"][0] < 0.5 < exact["pass_hat_k_interval"][1]
    # The per-grader figures count every graded trial: 3 + 3 + 2 graded, 3 + 2 + 1 passed.
    assert (
        run.summary["graders"]["answer-exact"]["n"],
        run.summary["graders"]["answer-exact"]["passed"],
    ) == (
        8,
        6,
    )


@pytest.mark.parametrize(
    ("items", "path", "message"),
    [
        ([submitted("steady", "No", 1), submitted("steady", "No", 1)], "outputs[1].case", "(trial 1)"),
        ([submitted("steady", "No", 0)], "outputs[0].trial", "from 1 to 20"),
        ([submitted("steady", "No", 21)], "outputs[0].trial", "from 1 to 20"),
        ([{"case": "steady", "output": "No", "trial": "2"}], "outputs[0].trial", "whole number"),
        ([{"case": "steady", "output": "No", "trial": True}], "outputs[0].trial", "whole number"),
    ],
)
def test_a_bad_trial_is_refused_naming_its_path(items, path, message):
    with pytest.raises(ValidationError) as refused:
        parse_outputs(items)
    assert message in " ".join(refused.value.message_dict[path])


def test_a_trial_already_submitted_in_an_earlier_page_is_refused(three_cases):
    from grading_app.services import add_outputs, open_run

    run = open_run(dataset=three_cases, candidate="v1")
    add_outputs(run, parse_outputs([submitted("steady", "No", 1), submitted("steady", "No", 2)]))
    with pytest.raises(ValidationError, match=r"steady \(trial 2\)"):
        add_outputs(run, parse_outputs([submitted("steady", "No", 2)]))
    assert Run.objects.get(pk=run.pk).trials == 2


def test_submitted_outputs_cannot_ask_for_trials_they_do_not_carry(three_cases):
    with pytest.raises(ValidationError, match="their own trial"):
        start_run(
            dataset=three_cases,
            candidate="v1",
            outputs=parse_outputs([submitted("steady", "No", 1)]),
            trials=3,
        )


# End to end: an openai_chat target, three trials per case, through the API and the fake server.

PASS_HAT_K = {"name": "reliable", "metric": "pass_hat_k", "threshold": 0.9, "severity": "block"}
PASS_RATE = {"name": "accurate", "metric": "pass_rate", "threshold": 0.6, "severity": "block"}
CONSISTENT = {"name": "steady", "metric": "consistency", "threshold": 0.8, "severity": "warn"}


def flaky_model(fail_on_call: int | None):
    """The target model: answers "No" (right), except on the ``fail_on_call``-th call for each
    question, whatever order the concurrent calls arrive in."""
    calls: Counter = Counter()

    def respond(body: dict) -> object:
        question = json.dumps(body["messages"], sort_keys=True)
        calls[question] += 1
        return text("Yes" if calls[question] == fail_on_call else "No")

    return respond


def run_check(api_client, fake_openai, capture, *, fail_on_call: int | None, trials: int = 3) -> dict:
    target = save_target(
        slug="chat", kind="openai_chat", endpoint=make_endpoint(fake_openai.base_url), config={"model": "m"}
    )
    s = make_scenario(n_trusted=4, n_monitoring=2, default_target=target, rules=[])
    for case in s["cases"]:  # a question of its own per case, so the model can count per case
        question = {"messages": [{"role": "user", "content": f"Can I get a refund? (order {case.key})"}]}
        Case.objects.filter(pk=case.pk).update(input=question)
    for rule in (PASS_HAT_K, PASS_RATE, CONSISTENT):
        s["gate"].rules.create(grader=s["grader"], **{k: v for k, v in rule.items()})
    fake_openai.responder(flaky_model(fail_on_call))
    secret = make_token([s["gate"]])
    with capture(execute=True):
        response = api_client.post(
            f"/api/v1/gates/{s['gate'].slug}/checks/",
            {"candidate": "v2", "trials": trials},
            format="json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )
    assert response.status_code == 202, response.content
    check = api_client.get(response.json()["url"], HTTP_AUTHORIZATION=f"Bearer {secret}").json()
    return {"check": check, "rules": {r["name"]: r for r in check["rules"]}}


def test_pass_hat_k_fails_a_target_that_fails_one_trial_in_three(
    api_client, fake_openai, django_capture_on_commit_callbacks
):
    got = run_check(api_client, fake_openai, django_capture_on_commit_callbacks, fail_on_call=2)
    calls = [r for r in fake_openai.requests if r["path"].endswith("/chat/completions")]
    assert len(calls) == 6 * 3  # six cases, three trials each
    rules = got["rules"]
    # Every case passed 2 of its 3 trials: the pass rate is 2/3 per case, pass^3 is 0 and each
    # case agrees with its usual outcome 2 times in 3.
    assert rules["accurate"]["value"] == pytest.approx(2 / 3) and rules["accurate"]["outcome"] == "pass"
    assert (rules["reliable"]["value"], rules["reliable"]["n"], rules["reliable"]["outcome"]) == (
        0.0,
        6,
        "fail",
    )
    assert rules["steady"]["value"] == pytest.approx(2 / 3) and rules["steady"]["outcome"] == "fail"
    assert got["check"]["verdict"] == "fail"
    assert got["check"]["progress"] == {"done": 18, "total": 18}


def test_the_same_gate_passes_a_target_that_never_fails(
    api_client, fake_openai, django_capture_on_commit_callbacks
):
    got = run_check(api_client, fake_openai, django_capture_on_commit_callbacks, fail_on_call=None)
    rules = got["rules"]
    assert rules["reliable"]["value"] == 1.0 and rules["reliable"]["outcome"] == "pass"
    assert rules["steady"]["value"] == 1.0 and rules["steady"]["outcome"] == "pass"
    assert got["check"]["verdict"] == "pass"


def test_one_trial_leaves_the_trial_rules_undecided(
    api_client, fake_openai, django_capture_on_commit_callbacks
):
    got = run_check(api_client, fake_openai, django_capture_on_commit_callbacks, fail_on_call=None, trials=1)
    assert got["rules"]["reliable"]["outcome"] == "undecided"
    assert "needs repeated trials" in got["rules"]["reliable"]["note"]
    assert got["check"]["verdict"] == "inconclusive"


def test_the_run_page_shows_each_graders_trials_and_the_flaky_cases(
    three_cases, admin_client, django_capture_on_commit_callbacks
):
    outputs = parse_outputs(
        [submitted("steady", "No", t) for t in (1, 2)]
        + [submitted("flaky", o, t) for t, o in ((1, "No"), (2, "Yes"))]
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=three_cases, candidate="v1", outputs=outputs)
    page = admin_client.get(f"/admin/grading_app/run/{run.pk}/change/").content.decode()
    assert "pass^2" in page and "pass@2" in page
    assert "flaky (1/2)" in page  # the flaky case, with the trials it passed
    results = admin_client.get(f"/admin/grading_app/caseresult/?run={run.pk}").content.decode()
    assert "flaky · trial 2 of 2" in results


def test_the_run_page_counts_cases_as_the_summary_does_and_names_the_trials(
    admin_client, django_capture_on_commit_callbacks
):
    # Admin walk M3: a run of 2 cases x 3 trials showed "6/6 cases" and latency percentiles
    # over the 6 trials, where the summary (run_eval's) merges each case's trials first.
    dataset = make_dataset()
    for key in ("slow-once", "steady"):
        make_case(dataset, key)
    make_grader("answer-exact")
    latencies = {"slow-once": (100, 100, 400), "steady": (150, 150, 150)}  # case means 200 and 150
    outputs = parse_outputs(
        [
            {"case": key, "output": "No", "trial": t, "metrics": {"latency_ms": ms, "cost_usd": ms / 1e5}}
            for key, trials in latencies.items()
            for t, ms in enumerate(trials, start=1)
        ]
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(dataset=dataset, candidate="v1", outputs=outputs)
    run.refresh_from_db()

    page = admin_client.get(f"/admin/grading_app/run/{run.pk}/change/").content.decode()

    signals = run.summary["signals"]
    assert (signals["latency_p50_ms"], signals["latency_p95_ms"]) == (175.0, 197.5)  # over 2 cases
    assert "p50 175 ms, p95 198 ms" in page  # the chart says what the summary says, not 150 / 362
    assert "6/6 results (2 cases x 3 trials)" in page
    assert "over 2 cases, each the mean of its 3 trials" in page  # cost: not "over 6 cases"
    # The pass-rate bars say what they count (plotly's JSON escapes the slash of "6/6").
    assert "trials passed, 0 errors" in page and "over graded trials: 3 per case" in page
    result = CaseResult.objects.get(run=run, case__key="steady", trial=2)
    result_page = admin_client.get(f"/admin/grading_app/caseresult/{result.pk}/change/").content.decode()
    assert "Case steady in run" in result_page and ", trial 2 of 3" in result_page
