"""The datasets chart builders: which traces they draw, with which values."""

from datetime import date

from datasets_app import charts


def test_cases_chart_stacks_statuses_over_tier_and_failure_class():
    figure = charts.cases_by_tier_class_status(
        [
            ("monitoring", "factual", "draft", 1),
            ("trusted", "factual", "active", 3),
            ("trusted", "safety", "active", 2),
            ("trusted", "safety", "in_review", 1),
        ]
    )

    # Statuses in lifecycle order; only those present.
    assert [t.name for t in figure.data] == ["draft", "in review", "active"]
    # Trusted first, then monitoring: a two-level axis of tier and failure class.
    tiers, classes = figure.data[0].x
    assert list(tiers) == ["trusted", "trusted", "monitoring"]
    assert list(classes) == ["factual", "safety", "factual"]
    assert figure.data[0].y == (0, 0, 1)
    assert figure.data[1].y == (0, 1, 0)
    assert figure.data[2].y == (3, 2, 0)
    assert figure.layout.barmode == "stack"


def test_growth_is_cumulative_per_tier():
    figure = charts.growth(
        [
            (date(2025, 1, 1), "trusted", 2),
            (date(2025, 1, 3), "trusted", 3),
            (date(2025, 1, 2), "monitoring", 1),
            (date(2025, 1, 4), "monitoring", 4),
        ]
    )

    assert [t.name for t in figure.data] == ["trusted", "monitoring"]
    trusted, monitoring = figure.data
    assert trusted.x == (date(2025, 1, 1), date(2025, 1, 3))
    assert trusted.y == (2, 5)
    assert monitoring.y == (1, 5)
    # A day of margin either side, ticks on whole days: never a zoom into milliseconds.
    assert list(figure.layout.xaxis.range) == [date(2024, 12, 31), date(2025, 1, 5)]
    assert figure.layout.xaxis.dtick == charts.DAY_MS


def test_incidents_chart_shows_every_status_stacked_by_severity():
    figure = charts.incidents_by_status([("converted", "high", 2), ("new", "low", 1), ("new", "high", 1)])

    assert [t.name for t in figure.data] == ["low", "high"]
    assert figure.data[0].x == ("new", "triaged", "converted", "dismissed")
    assert figure.data[0].y == (1, 0, 0, 0)
    assert figure.data[1].y == (1, 0, 2, 0)
    assert figure.layout.barmode == "stack"
