"""Measuring on a shared, noisy machine: medians of repeated calls, the isolated cost of a hook, a CI for a
median, and peak memory in a fresh process.

Every figure of the benchmarks (bench_cost, bench_graph, bench_recipe) goes through these functions, so
"median of N calls after a warm-up" and "with the hook minus without it" mean the same thing in every one of them.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from recipes.evidence.records import REPO_ROOT


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


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """A distribution-free confidence interval for the median: the order statistics (j, k) of the sorted values
    that cover the median with at least `level` probability, from the binomial(n, 1/2) distribution (nan below
    6 values, where no such pair reaches 95%)."""
    from scipy import stats

    ordered = sorted(values)
    n = len(ordered)
    for j in range(n // 2, -1, -1):
        # P(X_(j+1) <= median <= X_(n-j)) = P(j+1 <= B <= n-j-1) + edge terms = 1 - 2 P(B <= j)
        if 1 - 2 * stats.binom.cdf(j, n, 0.5) >= level:
            return ordered[j], ordered[n - 1 - j]
    return float("nan"), float("nan")


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_in_fresh_process(module: str, arguments: list[str]) -> str:
    """Run `python -m MODULE ARGUMENTS` in a new process, this clone first on its path, for a measurement that must
    not see this process's allocations or caches; returns its stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", module, *arguments]
    return subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
