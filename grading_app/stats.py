"""Small statistics shared by run summaries and gate rules: percentiles and Wilson intervals.

It lives in grading_app (not gates_app) because run summaries need it too, and imports
only flow gates_app -> grading_app.
"""

import math
from collections.abc import Sequence

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in [0, 100]) as numpy's default; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval for a binomial rate; None when n is 0.

    Unlike the normal approximation it stays inside [0, 1] and behaves at 0 or n successes,
    which is where small trusted sets live.
    """
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values: Sequence[float], z: float = Z_95) -> tuple[float, float] | None:
    """Normal-approximation interval of a mean; None for fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    m = sum(values) / n
    variance = sum((v - m) ** 2 for v in values) / (n - 1)
    half = z * math.sqrt(variance / n)
    return m - half, m + half


def mean_interval_from(m: float, variance: float, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """The same interval from a mean and a sample variance already aggregated (in SQL)."""
    if n < 2:
        return None
    half = z * math.sqrt(max(variance, 0.0) / n)
    return m - half, m + half


def paired_difference_interval(
    candidate: Sequence[float], baseline: Sequence[float], z: float = Z_95
) -> tuple[float, tuple[float, float] | None]:
    """Mean of the per-case differences (candidate - baseline) and its 95% interval.

    Pairing on the same cases removes the case-to-case spread that two independent samples
    would carry, so a real regression shows with fewer cases. None interval below two pairs.
    """
    if len(candidate) != len(baseline):
        raise ValueError("paired samples must have the same length")
    diffs = [c - b for c, b in zip(candidate, baseline, strict=True)]
    return (sum(diffs) / len(diffs) if diffs else 0.0), mean_interval(diffs, z)


def rate_difference_interval(
    successes: int, n: int, base_successes: int, base_n: int, z: float = Z_95
) -> tuple[float, tuple[float, float]] | None:
    """Difference of two independent rates (p - p_base) and its 95% interval (Newcombe's hybrid
    score method, built from the two Wilson intervals); None when either sample is empty."""
    here, there = wilson_interval(successes, n, z), wilson_interval(base_successes, base_n, z)
    if here is None or there is None:
        return None
    p, p_base = successes / n, base_successes / base_n
    difference = p - p_base
    low = difference - math.sqrt((p - here[0]) ** 2 + (there[1] - p_base) ** 2)
    high = difference + math.sqrt((here[1] - p) ** 2 + (p_base - there[0]) ** 2)
    return difference, (low, high)


def mean_difference_interval(
    m: float, variance: float, n: int, base_m: float, base_variance: float, base_n: int, z: float = Z_95
) -> tuple[float, tuple[float, float]] | None:
    """Difference of two independent means and its 95% interval (Welch's normal approximation);
    None below two values on either side."""
    if n < 2 or base_n < 2:
        return None
    half = z * math.sqrt(max(variance, 0.0) / n + max(base_variance, 0.0) / base_n)
    difference = m - base_m
    return difference, (difference - half, difference + half)


def quantile_ranks(n: int, q: float, z: float = Z_95) -> tuple[int, int] | None:
    """The 1-based ranks of the order statistics bounding a 95% interval of the q-quantile
    (distribution-free: the count below the quantile is binomial); None when n is 0."""
    if n <= 0:
        return None
    centre, half = n * q, z * math.sqrt(n * q * (1 - q))
    return max(1, math.floor(centre - half)), min(n, math.ceil(centre + half))


def quantile_difference_interval(
    value: float, interval: Sequence[float], base_value: float, base_interval: Sequence[float]
) -> tuple[float, tuple[float, float]]:
    """Difference of two independent quantiles and its interval, recovered from each one's own
    interval (the MOVER method of Zou and Donner, which Newcombe's is a case of)."""
    difference = value - base_value
    low = difference - math.sqrt((value - interval[0]) ** 2 + (base_interval[1] - base_value) ** 2)
    high = difference + math.sqrt((interval[1] - value) ** 2 + (base_value - base_interval[0]) ** 2)
    return difference, (low, high)
