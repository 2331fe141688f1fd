"""What a paired t-test under Holm can detect with few seeds: the |t| its first step needs in a family of m
comparisons, and its power for a given true gain (the page states both, so that a null is read for what it is)."""

from __future__ import annotations

import math


def first_step_t(family_size: int, seeds: int, alpha: float = 0.05) -> float:
    """The |t| a paired t-test over `seeds` pairs needs to clear Holm's first (most lenient single) step, two-sided
    p < alpha / family_size."""
    from scipy import stats

    if family_size < 1 or seeds < 2:
        raise ValueError(f"family_size must be at least 1 and seeds at least 2 (got {family_size} and {seeds})")
    return float(stats.t.ppf(1 - alpha / family_size / 2, seeds - 1))


def power(gain: float, sd: float, family_size: int, seeds: int, alpha: float = 0.05) -> float:
    """The chance that a true mean paired difference `gain` (per-seed differences with spread `sd`) clears Holm's
    first step in a family of `family_size`: the noncentral t's mass beyond the critical |t|, both tails. An upper
    bound on the power of any later step."""
    from scipy import stats

    if sd <= 0:
        raise ValueError(f"sd must be positive (got {sd})")
    critical = first_step_t(family_size, seeds, alpha)
    shift = gain / (sd / math.sqrt(seeds))
    return float(stats.nct.sf(critical, seeds - 1, shift) + stats.nct.cdf(-critical, seeds - 1, shift))
