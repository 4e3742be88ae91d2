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
