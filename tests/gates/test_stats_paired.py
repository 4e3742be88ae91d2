"""paired_difference_interval against values worked out by hand (z = 1.96 for a 95% interval)."""

import math

import pytest

from grading_app.stats import Z_95, paired_difference_interval


def test_the_paired_interval_of_rising_differences_matches_the_hand_computation():
    candidate = [3.0, 5.0, 7.0, 9.0, 11.0]
    baseline = [2.0, 3.0, 4.0, 5.0, 6.0]
    # differences (candidate - baseline): 1, 2, 3, 4, 5
    # mean diff = 15 / 5 = 3
    # sample variance = ((-2)^2 + (-1)^2 + 0^2 + 1^2 + 2^2) / (5 - 1) = 10 / 4 = 2.5
    # sample sd = sqrt(2.5) = 1.58114; se = sd / sqrt(5) = sqrt(0.5) = 0.70711
    # half width = 1.96 * 0.70711 = 1.38590 -> interval 3 -/+ 1.38590 = [1.61410, 4.38590]
    average, interval = paired_difference_interval(candidate, baseline)

    assert average == 3.0
    low, high = interval
    assert low == pytest.approx(1.61410, abs=1e-4)
    assert high == pytest.approx(4.38590, abs=1e-4)


def test_the_paired_interval_of_a_regression_on_pass_fail_cases():
    candidate = [1.0, 0.0, 0.0, 1.0]
    baseline = [1.0, 1.0, 1.0, 1.0]
    # differences: 0, -1, -1, 0; mean diff = -2 / 4 = -0.5
    # sample variance = (0.5^2 + 0.5^2 + 0.5^2 + 0.5^2) / (4 - 1) = 1 / 3 = 0.33333
    # sample sd = 0.57735; se = 0.57735 / sqrt(4) = 0.28868
    # half width = 1.96 * 0.28868 = 0.56579 -> interval [-1.06579, 0.06579]: it straddles 0
    average, interval = paired_difference_interval(candidate, baseline)

    assert average == -0.5
    low, high = interval
    assert low == pytest.approx(-1.06579, abs=1e-4)
    assert high == pytest.approx(0.06579, abs=1e-4)


def test_pairing_removes_the_spread_between_cases():
    # Cases of very different size, each improved by exactly 1: every difference is 1,
    # so the sample sd of the differences is 0 and the interval collapses onto the mean,
    # where two independent samples would carry the 10 -> 1000 spread.
    average, interval = paired_difference_interval([11.0, 101.0, 1001.0], [10.0, 100.0, 1000.0])

    assert average == pytest.approx(1.0)
    assert interval == pytest.approx((1.0, 1.0))


def test_a_narrower_z_gives_a_narrower_interval():
    # differences 0.5 and -0.5: mean 0, sample variance (0.25 + 0.25) / 1 = 0.5,
    # se = sqrt(0.5 / 2) = 0.5; half width = z * 0.5
    _, default = paired_difference_interval([1.0, 0.0], [0.5, 0.5])
    _, ninety = paired_difference_interval([1.0, 0.0], [0.5, 0.5], z=1.645)

    assert default == pytest.approx((-Z_95 * 0.5, Z_95 * 0.5))
    assert ninety == pytest.approx((-0.8225, 0.8225))
    assert math.isclose(Z_95, 1.96, abs_tol=1e-3)


def test_samples_of_different_lengths_are_a_value_error():
    with pytest.raises(ValueError, match="same length"):
        paired_difference_interval([1.0, 0.0, 1.0], [1.0, 1.0])


@pytest.mark.parametrize(
    ("candidate", "baseline", "average"),
    [([0.0], [1.0], -1.0), ([], [], 0.0)],
    ids=["one pair", "no pairs"],
)
def test_fewer_than_two_pairs_give_the_mean_and_no_interval(candidate, baseline, average):
    assert paired_difference_interval(candidate, baseline) == (average, None)
