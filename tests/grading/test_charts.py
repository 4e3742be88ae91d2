"""The grading figure builders: plain data in, plotly figures out (no database)."""

import pytest

from grading_app import charts
from grading_app.stats import wilson_interval

T, F = True, False


def grader_stats(passed: int, n: int, errors: int = 0) -> dict:
    """A grader's entry of a run summary, as grading_app.summary builds it."""
    interval = wilson_interval(passed, n)
    return {
        "n": n,
        "passed": passed,
        "errors": errors,
        "pass_rate": passed / n if n else None,
        "interval": list(interval) if interval else None,
        "mean_score": None,
    }


SUMMARY = {
    "by_tier": {
        "monitoring": {"graders": {"answer-exact": grader_stats(1, 2)}},
        "trusted": {"graders": {"answer-exact": grader_stats(4, 4), "judge": grader_stats(3, 4, errors=1)}},
    },
    "by_failure_class": {"factual": {"graders": {"answer-exact": grader_stats(5, 6)}}},
}


def test_pass_rate_by_group_draws_a_bar_per_grader_and_group_on_a_two_level_axis():
    figure = charts.pass_rate_by_group(SUMMARY)
    assert [trace.name for trace in figure.data] == ["answer-exact", "judge"]
    exact, judge = figure.data
    assert [list(level) for level in exact.x] == [
        ["tier", "tier", "failure class"],
        ["monitoring", "trusted", "factual"],
    ]
    assert list(exact.y) == [0.5, 1.0, pytest.approx(5 / 6)]
    # The judge graded only the trusted tier: no bar elsewhere, rather than a zero.
    assert list(judge.y) == [None, 0.75, None]
    assert figure.layout.barmode == "group"


def test_pass_rate_error_bars_are_the_wilson_interval_around_the_rate():
    exact = charts.pass_rate_by_group(SUMMARY).data[0]
    low, high = wilson_interval(1, 2)
    assert exact.error_y.symmetric is False
    assert exact.error_y.array[0] == pytest.approx(high - 0.5)
    assert exact.error_y.arrayminus[0] == pytest.approx(0.5 - low)
    # 4/4: the interval's top is the rate itself, so the bar only reaches down.
    low, high = wilson_interval(4, 4)
    assert exact.error_y.array[1] == pytest.approx(0.0, abs=1e-12)
    assert exact.error_y.arrayminus[1] == pytest.approx(1.0 - low)
    assert all(value >= 0 for value in (*exact.error_y.array, *exact.error_y.arrayminus))


def test_pass_rate_hover_says_how_many_passed_and_errored():
    judge = charts.pass_rate_by_group(SUMMARY).data[1]
    assert judge.customdata[1] == "3/4 passed, 1 errors"


def test_has_pass_rates_is_false_for_an_unfinished_run():
    assert charts.has_pass_rates(SUMMARY)
    assert not charts.has_pass_rates({})
    assert not charts.has_pass_rates({"by_tier": {"trusted": {"graders": {}}}, "by_failure_class": {}})


def test_latency_and_ttft_are_overlaid_histograms_with_percentiles_in_the_legend():
    figure = charts.latency_and_ttft_histogram([100, 200, 300], [10, 30])
    latency, ttft = figure.data
    assert (latency.type, ttft.type) == ("histogram", "histogram")
    assert list(latency.x) == [100, 200, 300]
    assert list(ttft.x) == [10, 30]
    # p50 of 100, 200, 300 is 200; p95 = 200 + 0.9 * 100 = 290.
    assert latency.name == "latency (p50 200 ms, p95 290 ms)"
    assert figure.layout.barmode == "overlay"


def test_a_target_without_ttft_draws_only_latency():
    figure = charts.latency_and_ttft_histogram([100.0], [])
    assert [trace.name.split()[0] for trace in figure.data] == ["latency"]


def test_cost_per_case_is_a_box_with_every_case_and_the_mean_in_the_title():
    figure = charts.cost_per_case([0.001, 0.002, 0.003])
    (box,) = figure.data
    assert box.type == "box"
    assert list(box.x) == [0.001, 0.002, 0.003]
    assert box.boxpoints == "all"
    assert box.boxmean is True
    assert figure.layout.title.text == "Cost per case (mean $0.0020 over 3 cases)"


def test_confusion_matrix_counts_judge_against_human_verdicts():
    # 4 x (T,T), 1 x (T,F), 2 x (F,T), 3 x (F,F): agreement 7/10; kappa 0.4
    # (worked through in tests/grading/test_calibration.py).
    pairs = [(T, T)] * 4 + [(T, F)] + [(F, T)] * 2 + [(F, F)] * 3
    figure = charts.confusion_matrix(pairs)
    (heatmap,) = figure.data
    assert list(heatmap.y) == ["judge pass", "judge fail"]
    assert list(heatmap.x) == ["human pass", "human fail"]
    assert [list(row) for row in heatmap.z] == [[4, 1], [2, 3]]
    assert [list(row) for row in heatmap.text] == [[4, 1], [2, 3]]
    assert figure.layout.title.text == "Judge vs human (n=10): agreement 70%, Cohen's kappa 0.40"


def test_confusion_matrix_says_when_kappa_is_undefined():
    # Both always pass: chance agreement is 1, so kappa is undefined.
    figure = charts.confusion_matrix([(T, T)] * 3)
    assert [list(row) for row in figure.data[0].z] == [[3, 0], [0, 0]]
    assert figure.layout.title.text == "Judge vs human (n=3): agreement 100%, Cohen's kappa -"
