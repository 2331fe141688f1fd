"""Paired statistics over seeds: how a metric's differences are scaled, and their mean with a t confidence interval.

Two arms run with the same seed see the same data order and head initialisation, so the studies compare
them seed by seed and summarise the differences here.
"""

from __future__ import annotations

import statistics


def metric_scale(metric: str) -> tuple[float, str, int, int]:
    """How a metric's differences are shown: (multiplier, unit, +1 if higher is better else -1, decimals)."""
    if metric.endswith("loss"):
        return 1.0, "nats", -1, 3
    return 100.0, "points", 1, 2


def mean_interval(diffs: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired differences and its two-sided t confidence interval (nan bounds below 2 seeds)."""
    from scipy import stats

    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
    return mean, mean - half, mean + half


def draw_paired_row(axis, row: int, diffs: list[float]) -> None:
    """One arm's row of a paired plot: each seed's difference (grey dots), the mean (square) and its 95% CI (bar)."""
    mean, low, high = mean_interval(diffs)
    axis.scatter(diffs, [row] * len(diffs), color="grey", alpha=0.6, s=16, zorder=2)
    if len(diffs) > 1:
        axis.plot([low, high], [row, row], color="C0", linewidth=2, zorder=3)
    axis.scatter([mean], [row], color="C0", marker="s", s=36, zorder=4)
