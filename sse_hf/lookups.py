"""The records of what SSE swaps: one per hooked embedding table (its role, sampler and base p) and one for label
SSE, each with its counts kept on the device."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .samplers import GraphSampler, UniformSampler

# The roles of word-piece lookups; other hooked tables are named by their module path.
WORD_PIECE_ROLES = ("input", "encoder", "decoder")


@dataclass
class DeviceCounts:
    """Per device, [seen, eligible, swapped]: tensors, not Python ints, so compiled code never recompiles to count
    and counting never waits for the device."""

    by_device: dict[torch.device, torch.Tensor] = field(default_factory=dict)

    def prepare(self, device: torch.device) -> None:
        """Make the zero counts of `device` now, outside compiled or timed code."""
        self.by_device.setdefault(device, torch.zeros(3, dtype=torch.long, device=device))

    def add(self, eligible: torch.Tensor, swapped: torch.Tensor) -> None:
        """Add a batch: its size and how many positions were eligible and swapped, on the device."""
        step = torch.stack([eligible.new_full((), eligible.numel(), dtype=torch.long), eligible.sum(), swapped.sum()])
        counts = self.by_device.get(step.device)
        if counts is None:
            self.by_device[step.device] = step
        else:
            counts += step

    def totals(self) -> list[int]:
        """[seen, eligible, swapped] summed over the devices: one host read per device."""
        totals = [0, 0, 0]
        for counts in self.by_device.values():
            totals = [a + b for a, b in zip(totals, counts.tolist())]
        return totals

    def clear(self) -> None:
        self.by_device.clear()


@dataclass
class Lookup:
    """One hooked embedding table: its role, how it swaps, its base p and what it has counted."""

    role: str
    module: nn.Module
    sampler: UniformSampler | GraphSampler
    base_p: float
    # Set when one embedding module serves both encoder and decoder: swap only while this stack runs.
    stack: nn.Module | None = None
    rows: int | None = None  # the declared row count at attach time: a resize afterwards is a clear error
    counts: DeviceCounts = field(default_factory=DeviceCounts)

    @property
    def is_word_piece(self) -> bool:
        return self.role in WORD_PIECE_ROLES


@dataclass
class LabelSwap:
    """Label SSE: its base p, the number of classes it draws from (None when off) and what it has counted."""

    base_p: float
    num_classes: int | None = None
    counts: DeviceCounts = field(default_factory=DeviceCounts)
    role: str = "labels"
