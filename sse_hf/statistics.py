"""What the swaps did: tokens seen, eligible and swapped per role, and the rate, summed over the devices and,
where asked, over the processes of a distributed run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

COUNT_KEYS = ("tokens_seen", "tokens_eligible", "tokens_swapped")


def role_stats(seen: int, eligible: int, swapped: int) -> dict[str, float]:
    """One role's counts and its swap rate (swapped / eligible, 0 when nothing was eligible)."""
    return {
        "tokens_seen": seen,
        "tokens_eligible": eligible,
        "tokens_swapped": swapped,
        "swap_rate": swapped / eligible if eligible else 0.0,
    }


def stats_of(counts: Mapping[str, Sequence[int]]) -> dict[str, dict[str, float]]:
    """Per role, `role_stats` of its [seen, eligible, swapped]."""
    return {role: role_stats(*values) for role, values in counts.items()}


def word_piece_totals(counts: Mapping[str, Sequence[int]], roles: Sequence[str]) -> list[int]:
    """[seen, eligible, swapped] summed over the given roles."""
    chosen = [values for role, values in counts.items() if role in roles]
    return [sum(values[i] for values in chosen) for i in range(3)]


def sum_across_processes(counts: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    """Per role, [seen, eligible, swapped] summed over every process of an initialised torch.distributed group (as
    transformers' MoERouterHealthCallback all-reduces before logging); the counts as they are in one process.

    Every process must call it at the same point with the same roles (each Trainer log is such a point).
    """
    counts = {role: [int(v) for v in values] for role, values in counts.items()}
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()) or not counts:
        return counts
    roles = sorted(counts)
    device = torch.device("cpu")
    if torch.distributed.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    local = torch.tensor([counts[role] for role in roles], dtype=torch.long, device=device)
    torch.distributed.all_reduce(local, op=torch.distributed.ReduceOp.SUM)
    return dict(zip(roles, local.tolist()))


def process_count() -> int:
    """The processes of an initialised torch.distributed group (1 without one): the ones `sum_across_processes` sums."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1
