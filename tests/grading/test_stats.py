"""Unit tests of the small statistics used by run summaries and gate rules."""

import math

import pytest

from grading_app.stats import Z_95, mean, mean_interval, percentile, wilson_interval

# Wilson score interval, by hand with z = 1.959964 (z^2 = 3.841459):
#   denominator = 1 + z^2/n, centre = (p + z^2/(2n)) / denominator,
#   half = z * sqrt(p(1-p)/n + z^2/(4n^2)) / denominator.


def test_z_is_the_two_sided_95_percent_quantile():
    assert abs(Z_95 - 1.96) < 5e-4


def test_wilson_interval_eight_of_ten():
    # p = 0.8, denominator = 1.384146, centre = 0.992073 / 1.384146 = 0.716740,
    # half = 1.959964 * sqrt(0.016 + 0.009604) / 1.384146 = 0.226578
    low, high = wilson_interval(8, 10)
    assert round(low, 4) == 0.4902
    assert round(high, 4) == 0.9433


def test_wilson_interval_half_is_symmetric_around_one_half():
    # p = 0.5: centre = 0.5, half = 1.959964 * sqrt(0.025 + 0.009604) / 1.384146 = 0.263407
    low, high = wilson_interval(5, 10)
    assert round(low, 4) == 0.2366
    assert round(high, 4) == 0.7634


def test_wilson_interval_zero_successes_starts_at_zero():
    # p = 0: the interval is [0, (z^2/n) / denominator] = [0, 0.384146 / 1.384146]
    low, high = wilson_interval(0, 10)
    assert low == 0.0
    assert round(high, 4) == 0.2775


def test_wilson_interval_all_successes_ends_at_one():
    # p = 1: the interval is [1 / denominator, 1] = [1 / 1.384146, 1]
    low, high = wilson_interval(10, 10)
    assert round(low, 4) == 0.7225
    assert high == pytest.approx(1.0)
    assert high <= 1.0


def test_wilson_interval_never_leaves_zero_to_one_at_the_extremes():
    # Unclamped, rounding puts the bounds a hair outside [0, 1] for some n (e.g. 0/21, 16/16).
    for n in range(1, 100):
        assert wilson_interval(0, n)[0] >= 0.0
        assert wilson_interval(n, n)[1] <= 1.0


def test_wilson_interval_narrows_with_more_cases():
    small = wilson_interval(8, 10)
    large = wilson_interval(80, 100)
    assert large[1] - large[0] < small[1] - small[0]
    assert large[0] <= 0.8 <= large[1]


def test_wilson_interval_is_none_without_cases():
    assert wilson_interval(0, 0) is None


def test_wilson_interval_uses_the_given_z():
    # z = 1, 8 of 10: denominator 1.1, centre 0.85 / 1.1 = 0.772727,
    # half = sqrt(0.016 + 0.0025) / 1.1 = 0.123653
    low, high = wilson_interval(8, 10, z=1.0)
    assert round(low, 4) == 0.6491
    assert round(high, 4) == 0.8964


# Percentile, numpy's default ("linear"): rank = (n - 1) * q / 100, interpolate between
# the neighbouring sorted values.


def test_percentile_median_of_an_even_count_interpolates():
    # rank = 3 * 0.5 = 1.5 -> 2 + (3 - 2) * 0.5 = 2.5
    assert percentile([4, 1, 3, 2], 50) == 2.5


def test_percentile_median_of_an_odd_count_is_the_middle_value():
    # rank = 4 * 0.5 = 2 -> sorted[2] = 30
    assert percentile([50, 10, 30, 20, 40], 50) == 30.0


def test_percentile_p95_interpolates_between_the_top_two():
    # rank = 4 * 0.95 = 3.8 -> 40 + (50 - 40) * 0.8 = 48
    assert percentile([10, 20, 30, 40, 50], 95) == pytest.approx(48.0)


def test_percentile_p95_of_twenty_latencies():
    # values 100, 200, ..., 2000; rank = 19 * 0.95 = 18.05
    # -> sorted[18] + (sorted[19] - sorted[18]) * 0.05 = 1900 + 100 * 0.05 = 1905
    assert percentile([100 * i for i in range(20, 0, -1)], 95) == pytest.approx(1905.0)


def test_percentile_p25_interpolates_at_a_quarter():
    # rank = 3 * 0.25 = 0.75 -> 1 + (2 - 1) * 0.75 = 1.75
    assert percentile([1, 2, 3, 4], 25) == pytest.approx(1.75)


def test_percentile_extremes_are_min_and_max():
    values = [7, 3, 9, 1]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 9.0


def test_percentile_of_one_value_is_that_value():
    assert percentile([42], 95) == 42.0


def test_percentile_of_nothing_is_none():
    assert percentile([], 50) is None


def test_percentile_does_not_reorder_its_input():
    values = [3, 1, 2]
    percentile(values, 50)
    assert values == [3, 1, 2]


# Mean and its normal-approximation interval: m +- z * s / sqrt(n), s with n - 1.


def test_mean():
    assert mean([1, 2, 3, 4]) == 2.5
    assert mean([]) is None


def test_mean_interval_of_three_values():
    # m = 2, s^2 = (1 + 0 + 1) / 2 = 1, half = 1.959964 * sqrt(1 / 3) = 1.131586
    low, high = mean_interval([1, 2, 3])
    assert round(low, 4) == 0.8684
    assert round(high, 4) == 3.1316


def test_mean_interval_of_paired_differences():
    # ten 0s and ten 1s: m = 0.5, s^2 = 20 * 0.25 / 19 = 0.263158,
    # half = 1.959964 * sqrt(0.263158 / 20) = 0.224823
    low, high = mean_interval([0.0] * 10 + [1.0] * 10)
    assert round(low, 4) == 0.2752
    assert round(high, 4) == 0.7248


def test_mean_interval_of_constant_values_has_no_width():
    assert mean_interval([0.7, 0.7, 0.7]) == pytest.approx((0.7, 0.7))


def test_mean_interval_needs_two_values():
    assert mean_interval([]) is None
    assert mean_interval([1.0]) is None


def test_mean_interval_scales_with_z():
    low, high = mean_interval([1, 2, 3], z=1.0)
    assert low == pytest.approx(2 - math.sqrt(1 / 3))
    assert high == pytest.approx(2 + math.sqrt(1 / 3))
