"""Timing on a shared, noisy machine: medians of repeated calls, and the isolated cost of a hook.

Every figure of the benchmark goes through these two functions, so "median of N calls after a warm-up"
and "with the hook minus without it" mean the same thing in every part of it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(function: Callable[[], object], repeats: int, warmup: int = 10, calls: int = 1) -> float:
    """Median over `repeats` timings of `calls` back-to-back calls of `function` (seconds per call), after `warmup` calls."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def isolated_hook_cost(
    attach: Callable[[], Callable[[], None]],
    forward: Callable[[], object],
    repeats: int = 100,
    rounds: int = 1,
    calls: int = 1,
) -> float:
    """Seconds that attaching hooks adds to `forward`, timed apart from the rest of a training step.

    `attach()` attaches the hooks and returns the function that detaches them. In each of `rounds`
    interleaved rounds `median_seconds(forward, repeats, calls=calls)` is taken without and then with the hooks; the cost is the
    median "with" minus the median "without" (not clipped: noise can make it slightly negative).
    """
    without, with_hooks = [], []
    for _ in range(rounds):
        without.append(median_seconds(forward, repeats, calls=calls))
        detach = attach()
        try:
            with_hooks.append(median_seconds(forward, repeats, calls=calls))
        finally:
            detach()
    return statistics.median(with_hooks) - statistics.median(without)
