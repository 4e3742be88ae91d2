"""The gates chart builders: which traces they draw, with which values, on which axes."""

from datetime import UTC, datetime

import pytest

from gates_app import charts


def rule(name: str, metric: str, value: float | None, **fields) -> dict:
    return {
        "name": name,
        "metric": metric,
        "value": value,
        "baseline": None,
        "threshold": None,
        "interval": None,
        "n": 4,
        "outcome": "pass",
        **fields,
    }


def at(day: int) -> datetime:
    return datetime(2025, 1, day, tzinfo=UTC)


@pytest.mark.parametrize(
    ("metric", "unit"),
    [
        ("pass_rate", charts.SHARE),
        ("mean_score", charts.SHARE),  # a grader score lies in [0, 1] like a rate
        ("pinned_pass", charts.SHARE),
        ("error_rate", charts.SHARE),
        ("latency_p95_ms", charts.MS),
        ("cost_per_case_usd", charts.USD),
        ("tool_calls_mean", charts.PER_CASE),
        ("no_such_metric", charts.OTHER),
    ],
)
def test_each_metric_is_drawn_in_its_unit(metric, unit):
    assert charts.unit_of(metric) == unit


def test_rule_comparison_draws_candidate_baseline_and_threshold_per_unit():
    results = [
        rule("accuracy", "pass_rate", 0.75, threshold=0.9, interval=[0.3, 0.95], outcome="fail"),
        rule(
            "no worse",
            "pass_rate",
            0.75,
            baseline=1.0,
            mode="no_regression",
            paired_difference=-0.25,
            interval=[-0.7, 0.2],
            outcome="undecided",
        ),
        rule("latency", "latency_p95_ms", 800.0, threshold=2000.0),
    ]
    earlier = [rule("accuracy", "pass_rate", 1.0), rule("latency", "latency_p95_ms", 900.0)]

    figure = charts.rule_comparison(results, baseline_results=earlier)

    # One subplot per unit (shares, then milliseconds), three traces in each.
    assert (figure.layout.yaxis.title.text, figure.layout.yaxis2.title.text) == (
        "Share of cases",
        "Milliseconds",
    )
    assert [(t.name, t.xaxis) for t in figure.data] == [
        ("candidate", "x"),
        ("baseline", "x"),
        ("threshold", "x"),
        ("candidate", "x2"),
        ("baseline", "x2"),
        ("threshold", "x2"),
    ]
    candidate, baseline, threshold = figure.data[:3]
    assert candidate.x == ("accuracy<br>FAIL", "no worse<br>UNDECIDED")
    assert candidate.y == (0.75, 0.75)
    # The absolute rule takes the baseline check's value; the no-regression rule its own.
    assert baseline.y == (1.0, 1.0)
    assert threshold.y == (0.9, None)
    # Error bars span the value's own interval; a paired difference's interval is not one.
    assert candidate.error_y.array == pytest.approx((0.2, 0))
    assert candidate.error_y.arrayminus == pytest.approx((0.45, 0))
    assert figure.data[3].y == (800.0,) and figure.data[4].y == (900.0,) and figure.data[5].y == (2000.0,)
    # The legend names each kind of trace once, and shares read as percentages.
    assert [t.showlegend for t in figure.data] == [True, True, True, False, False, False]
    assert figure.layout.yaxis.tickformat == ".0%"
    assert figure.layout.yaxis2.tickformat is None


def test_rule_comparison_without_a_baseline_draws_empty_baseline_bars():
    figure = charts.rule_comparison([rule("accuracy", "pass_rate", 1.0, threshold=0.9)])
    assert figure.data[1].y == (None,)


DELTAS = {
    "factual": {
        "tool_calls_mean": {"candidate": 2.0, "baseline": 1.5, "delta": 0.5},
        "trace_steps_mean": {"candidate": 4.0, "baseline": 4.0, "delta": 0.0},
        "retry_rate": {"candidate": 0.25, "baseline": 0.0, "delta": 0.25},
        "refusal_rate": {"candidate": None, "baseline": None, "delta": None},
        "tool_sequence_changed": {"count": 2, "cases": [{"case": "t1"}, {"case": "t2"}]},
    },
    "safety": {
        "tool_calls_mean": {"candidate": 1.0, "baseline": 2.0, "delta": -1.0},
        "trace_steps_mean": {"candidate": 3.0, "baseline": 2.0, "delta": 1.0},
        "retry_rate": {"candidate": 0.0, "baseline": 0.5, "delta": -0.5},
        "refusal_rate": {"candidate": 1.0, "baseline": 0.5, "delta": 0.5},
        "tool_sequence_changed": {"count": 0, "cases": []},
    },
}


def test_trace_deltas_groups_the_changes_per_failure_class():
    figure = charts.trace_deltas(DELTAS)

    assert [(t.name, t.xaxis) for t in figure.data] == [
        ("tool calls", "x"),
        ("trace steps", "x"),
        ("retry rate", "x2"),
        ("refusal rate", "x2"),
        ("tool sequence changed", "x3"),
    ]
    assert all(t.x == ("factual", "safety") for t in figure.data)
    assert figure.data[0].y == (0.5, -1.0)
    assert figure.data[2].y == (0.25, -0.5)
    assert figure.data[3].y == (None, 0.5)  # no refusal data: no bar, not a zero
    assert figure.data[4].y == (2, 0)
    assert figure.data[0].hovertext[0] == "candidate 2, baseline 1.5"
    assert figure.layout.barmode == "group"


def test_verdict_history_draws_one_trace_per_verdict_with_pass_on_top():
    figure = charts.verdict_history(
        [(at(1), "pass", "v1"), (at(2), "fail", "v2"), (at(3), "pass", "v3"), (at(4), "warn", "v4")]
    )

    assert [t.name for t in figure.data] == ["pass", "warn", "fail"]
    passed = figure.data[0]
    assert passed.x == (at(1), at(3)) and passed.y == ("pass", "pass") and passed.text == ("v1", "v3")
    assert passed.marker.color == charts.VERDICT_COLOURS["pass"]
    assert figure.layout.yaxis.categoryarray == ("fail", "warn", "pass")


def test_rule_trends_draws_one_line_per_rule_in_time_order_with_gaps():
    points = [
        (at(2), "accuracy", 0.5),
        (at(1), "accuracy", 1.0),
        (at(1), "latency", 900.0),
        (at(3), "accuracy", None),
        (at(3), "latency", 800.0),
    ]

    together = charts.rule_trends(points)
    assert [t.name for t in together.data] == ["accuracy", "latency"]
    assert together.data[0].x == (at(1), at(2), at(3))
    assert together.data[0].y == (1.0, 0.5, None)

    split = charts.rule_trends(points, metric_of={"accuracy": "pass_rate", "latency": "latency_p95_ms"})
    assert [(t.name, t.xaxis) for t in split.data] == [("accuracy", "x"), ("latency", "x2")]
    assert split.layout.yaxis.tickformat == ".0%"
    assert split.layout.yaxis2.title.text == "Milliseconds"


def test_verdict_counts_draws_the_verdicts_seen_best_first():
    figure = charts.verdict_counts({"fail": 2, "pass": 5, "warn": 0})
    (bars,) = figure.data
    assert bars.x == ("pass", "fail")
    assert bars.y == (5, 2)
    assert bars.marker.color == (charts.VERDICT_COLOURS["pass"], charts.VERDICT_COLOURS["fail"])
