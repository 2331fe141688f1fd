"""Paired two-sided t-test p-values over seeds and the Holm step-down adjustment across a family of comparisons."""

from __future__ import annotations

import math
import statistics


def paired_p(diffs: list[float]) -> float:
    """Two-sided p-value of the paired t-test that the mean difference is 0 (nan below 2 seeds; 0 or 1 when
    every difference is the same, non-zero or zero)."""
    from scipy import stats

    if len(diffs) < 2:
        return math.nan
    spread = statistics.stdev(diffs)
    mean = statistics.fmean(diffs)
    if spread == 0:
        return 1.0 if mean == 0 else 0.0
    t = mean / (spread / math.sqrt(len(diffs)))
    return float(2 * stats.t.sf(abs(t), len(diffs) - 1))


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given (nan entries stay nan and do not count in the family)."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(indexed)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
