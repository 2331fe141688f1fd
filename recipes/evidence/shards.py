"""Splitting a study's jobs between workers: the `--shard K/N` option and the share of jobs it selects."""

from __future__ import annotations

import argparse


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` -> (K, N): this worker runs every N-th job of the study, starting at job K."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes K/N, such as 0/2 (got {text!r})") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard K/N needs 0 <= K < N (got {text!r})")
    return index, count


def study_jobs(seeds: list[int], arms: list[str], shard: tuple[int, int] = (0, 1)) -> list[tuple[int, str]]:
    """(seed, arm) jobs, seeds outermost (an interrupted study has every arm at some seeds); this shard's share."""
    jobs = [(seed, arm) for seed in seeds for arm in arms]
    index, count = shard
    return jobs[index::count]


def add_shard_option(parser: argparse.ArgumentParser) -> None:
    """Add `--shard K/N` to a study's parser."""
    parser.add_argument(
        "--shard",
        type=parse_shard,
        default=(0, 1),
        metavar="K/N",
        help="run only job K, K+N, K+2N, ... of this step: start N workers (K = 0..N-1) to use N cores; "
        "set OMP_NUM_THREADS=1 for each",
    )
