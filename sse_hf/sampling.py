"""SSE's sampling functions: pure torch functions that turn ids into SSE-swapped ids (SSE-SE, SSE-Graph, labels).

They know nothing about models. Each is vectorised on the ids' own device, never synchronises with the
host and allocates nothing larger than the batch. Their plain-loop oracles are in `sse_hf.sampling_reference`.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch

# SSE-Graph draws one 62-bit integer per token: its high 31 bits pick a slot of the token's row, its low 31
# bits decide between the slot's own neighbour and its alias (Walker's alias method, O(1) per token). A
# global searchsorted over all edges was tried first: ~100 ns per token of dependent cache misses, 0.15x
# the speed of SSE-SE on a BERT-sized graph.
ALIAS_BITS = 31
ALIAS_MASK = (1 << ALIAS_BITS) - 1


class SSEGraphTables(Protocol):
    """The five per-device tables `swap_graph` reads (an `SSEGraph` provides them)."""

    row_start: torch.Tensor  # per token id: its first slot
    row_degree: torch.Tensor  # per token id: its number of neighbours (0: never swapped)
    alias_threshold: torch.Tensor  # per slot: keep its own neighbour when the low bits fall below this
    neighbor_table: torch.Tensor  # per slot: its own neighbour
    alias_table: torch.Tensor  # per slot: the alias taken otherwise


class Swap(NamedTuple):
    """The result of one swap: the new ids and two bool masks shaped like them."""

    ids: torch.Tensor
    swapped: torch.Tensor
    eligible: torch.Tensor


def _rng(generator: torch.Generator | None) -> dict:
    """The generator keyword of a random draw, left out when None: an explicit `generator=None` makes dynamo fail
    on symbolic shapes (`torch.compile(dynamic=True)`: "SymIntArrayRef expected to contain only concrete integers")."""
    return {} if generator is None else {"generator": generator}


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
    candidates (special, padding, reserved ids) are never replaced. Returns `Swap(ids, swapped, eligible)`:
    the new ids, the bool mask of the replaced positions and the bool mask of the candidate positions (those
    that could be replaced); `input_ids` itself is never modified.
    `candidates` and `positions` (from `candidate_positions`) must live on the ids' device.
    """
    safe_ids, inside = in_table(input_ids, positions.numel())
    own_position = positions[safe_ids]
    eligible = (own_position >= 0) & inside
    if p <= 0.0 or input_ids.numel() == 0 or candidates.numel() < 2:
        return Swap(input_ids, torch.zeros_like(eligible), eligible)
    draw = torch.rand(input_ids.shape, **_rng(generator), device=input_ids.device)
    swapped = (draw < p) & eligible
    # Draw from the other M - 1 candidates: an index at or past the token's own position moves up by one.
    offset = torch.randint(0, candidates.numel() - 1, input_ids.shape, **_rng(generator), device=input_ids.device)
    offset += offset >= own_position
    replacement = candidates[offset].to(input_ids.dtype)
    return Swap(torch.where(swapped, replacement, input_ids), swapped, eligible)


def swap_labels(labels: torch.Tensor, p: float, num_classes: int, generator: torch.Generator | None = None) -> Swap:
    """Label SSE: replace each class label, independently with probability `p`, by a different class.

    The new class is uniform over the other `num_classes - 1`. Labels outside [0, num_classes),
    such as the -100 that loss functions ignore, are never touched. `labels` is never modified.
    """
    eligible = (labels >= 0) & (labels < num_classes)
    if p <= 0.0 or labels.numel() == 0 or num_classes < 2:
        return Swap(labels, torch.zeros_like(eligible), eligible)
    draw = torch.rand(labels.shape, **_rng(generator), device=labels.device)
    swapped = (draw < p) & eligible
    shift = torch.randint(1, num_classes, labels.shape, **_rng(generator), device=labels.device)
    replacement = torch.remainder(labels + shift, num_classes).to(labels.dtype)
    return Swap(torch.where(swapped, replacement, labels), swapped, eligible)


def swap_graph(
    input_ids: torch.Tensor,
    p: float,
    graph: SSEGraphTables,
    generator: torch.Generator | None = None,
) -> Swap:
    """SSE-Graph: replace each token, independently with probability `p`, by one of its graph neighbours.

    The neighbour is drawn in proportion to edge weight; a token without neighbours is never replaced.
    `graph` must live on the ids' device (`graph.to(device)`, cached) and cover every id
    (`graph.resized(table_size)`). Vectorised, no host sync, only batch-sized temporaries.
    Returns `Swap(ids, swapped, eligible)`; `input_ids` itself is never modified.
    """
    flat = input_ids.reshape(-1)
    safe, inside = in_table(flat, graph.row_degree.numel())
    degree = graph.row_degree.index_select(0, safe)
    eligible = (degree > 0) & inside
    if p <= 0.0 or input_ids.numel() == 0:
        return Swap(input_ids, torch.zeros_like(eligible).view_as(input_ids), eligible.view_as(input_ids))
    draw = torch.rand(flat.shape, **_rng(generator), device=flat.device)
    swapped = draw < p
    swapped &= eligible
    # One 62-bit draw per token: high 31 bits -> slot in the row, low 31 bits -> keep the slot's neighbour or
    # take its alias. A token without neighbours gets slot = row start (at worst the padding slot); masked out.
    bits = torch.randint(0, 1 << (2 * ALIAS_BITS), flat.shape, **_rng(generator), device=flat.device)
    slot = bits >> ALIAS_BITS
    slot *= degree
    slot >>= ALIAS_BITS
    slot += graph.row_start.index_select(0, safe)
    bits &= ALIAS_MASK
    keep = bits < graph.alias_threshold.index_select(0, slot)
    replacement = torch.where(
        keep, graph.neighbor_table.index_select(0, slot), graph.alias_table.index_select(0, slot)
    )
    new_ids = torch.where(swapped, replacement.to(input_ids.dtype), flat)
    return Swap(new_ids.view_as(input_ids), swapped.view_as(input_ids), eligible.view_as(input_ids))
