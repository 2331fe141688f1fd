"""Pure tensor functions that turn token ids into SSE-swapped token ids.

They know nothing about models. The fast versions are vectorised on the ids' own device,
never synchronise with the host and allocate nothing larger than the batch; the `*_reference`
versions are plain Python loops kept as the obviously-correct oracle for the tests.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import NamedTuple

import torch


class Swap(NamedTuple):
    """The result of one swap: the new ids and two bool masks shaped like them."""

    ids: torch.Tensor
    swapped: torch.Tensor
    eligible: torch.Tensor


def candidate_positions(candidates: torch.Tensor, table_size: int) -> torch.Tensor:
    """Map every id below `table_size` to its index in `candidates`, or -1 if it is not a candidate.

    Built once per patch; `swap_uniform` uses it to find which tokens may be swapped and to
    skip a token's own id when drawing its replacement.
    """
    if candidates.ndim != 1:
        raise ValueError(f"candidates must be a 1-D tensor of token ids, got shape {tuple(candidates.shape)}.")
    if candidates.numel() and (int(candidates.min()) < 0 or int(candidates.max()) >= table_size):
        raise ValueError(
            f"candidate ids must lie in [0, {table_size}), got ids from {int(candidates.min())} to "
            f"{int(candidates.max())}."
        )
    if torch.unique(candidates).numel() != candidates.numel():
        raise ValueError("candidate ids must be unique.")
    positions = torch.full((table_size,), -1, dtype=torch.long, device=candidates.device)
    positions[candidates.long()] = torch.arange(candidates.numel(), device=candidates.device)
    return positions


def in_table(input_ids: torch.Tensor, table_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids clamped into [0, table_size) and the mask of ids already there: invalid ids are never swapped, so the
    embedding itself rejects them exactly as it would unpatched (no host sync, no device-side assert)."""
    inside = (input_ids >= 0) & (input_ids < table_size)
    return input_ids.clamp(0, table_size - 1), inside


def swap_uniform(
    input_ids: torch.Tensor,
    p: float,
    candidates: torch.Tensor,
    positions: torch.Tensor,
    generator: torch.Generator | None = None,
) -> Swap:
    """SSE-SE: replace each candidate token, independently with probability `p`, by another candidate.

    The replacement is uniform over `candidates` minus the token itself. Tokens that are not
    candidates (special, padding, reserved ids) are never replaced. Returns `(new_ids, swapped)`,
    where `swapped` is a bool mask of the replaced positions; `input_ids` itself is never modified.
    `candidates` and `positions` (from `candidate_positions`) must live on the ids' device.
    """
    safe_ids, inside = in_table(input_ids, positions.numel())
    own_position = positions[safe_ids]
    eligible = (own_position >= 0) & inside
    if p <= 0.0 or input_ids.numel() == 0 or candidates.numel() < 2:
        return Swap(input_ids, torch.zeros_like(eligible), eligible)
    draw = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    swapped = (draw < p) & eligible
    # Draw from the other M - 1 candidates: an index at or past the token's own position moves up by one.
    offset = torch.randint(0, candidates.numel() - 1, input_ids.shape, generator=generator, device=input_ids.device)
    offset += offset >= own_position
    replacement = candidates[offset].to(input_ids.dtype)
    return Swap(torch.where(swapped, replacement, input_ids), swapped, eligible)


def swap_uniform_reference(
    input_ids: Sequence[Sequence[int]], p: float, candidates: Sequence[int], rng: random.Random
) -> list[list[int]]:
    """The slow, obviously correct SSE-SE: a Python loop over every token. Test oracle only."""
    candidate_set = set(candidates)
    swapped_rows = []
    for row in input_ids:
        new_row = []
        for token in row:
            if token in candidate_set and rng.random() < p:
                token = rng.choice([other for other in candidates if other != token])
            new_row.append(token)
        swapped_rows.append(new_row)
    return swapped_rows


def swap_labels(
    labels: torch.Tensor, p: float, num_classes: int, generator: torch.Generator | None = None
) -> Swap:
    """Label SSE: replace each class label, independently with probability `p`, by a different class.

    The new class is uniform over the other `num_classes - 1`. Labels outside [0, num_classes),
    such as the -100 that loss functions ignore, are never touched. `labels` is never modified.
    """
    eligible = (labels >= 0) & (labels < num_classes)
    if p <= 0.0 or labels.numel() == 0 or num_classes < 2:
        return Swap(labels, torch.zeros_like(eligible), eligible)
    draw = torch.rand(labels.shape, generator=generator, device=labels.device)
    swapped = (draw < p) & eligible
    shift = torch.randint(1, num_classes, labels.shape, generator=generator, device=labels.device)
    replacement = torch.remainder(labels + shift, num_classes).to(labels.dtype)
    return Swap(torch.where(swapped, replacement, labels), swapped, eligible)


def swap_labels_reference(labels: Sequence[int], p: float, num_classes: int, rng: random.Random) -> list[int]:
    """The slow, obviously correct label SSE: a Python loop. Test oracle only."""
    result = []
    for label in labels:
        if 0 <= label < num_classes and rng.random() < p:
            label = rng.choice([other for other in range(num_classes) if other != label])
        result.append(label)
    return result
