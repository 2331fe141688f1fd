"""Per-device samplers for one hooked embedding: a swap kernel (SSE-SE over a candidate list, or SSE-Graph) with
its id tables kept on every device it has seen, so the hook only calls the pure kernel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .graph import SSEGraph
from .sampling import Swap, candidate_positions, swap_graph, swap_uniform


class UniformSampler:
    """SSE-SE: replacements uniform over `candidates` (all other candidates, never the token itself)."""

    method = "se"

    def __init__(self, candidates: Sequence[int], table_size: int):
        self.candidates = tuple(candidates)
        self.table_size = table_size
        self._tables: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def prepare(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        tables = self._tables.get(device)
        if tables is None:
            candidates = torch.tensor(self.candidates, dtype=torch.long, device=device)
            tables = (candidates, candidate_positions(candidates, self.table_size))
            self._tables[device] = tables
        return tables

    def __call__(self, ids: torch.Tensor, p: float, generator: torch.Generator | None) -> Swap:
        candidates, positions = self.prepare(ids.device)
        return swap_uniform(ids, p, candidates, positions, generator)


class GraphSampler:
    """SSE-Graph: replacements drawn from the token's neighbours in `graph`, by edge weight.

    `graph` comes from `prepare_graph`: special ids removed, one row per embedding row.
    """

    method = "graph"

    def __init__(self, graph: SSEGraph):
        self.graph = graph
        self._graphs: dict[torch.device, SSEGraph] = {}

    def prepare(self, device: torch.device) -> SSEGraph:
        graph = self._graphs.get(device)
        if graph is None:
            graph = self._graphs[device] = self.graph.to(device)
        return graph

    def __call__(self, ids: torch.Tensor, p: float, generator: torch.Generator | None) -> Swap:
        return swap_graph(ids, p, self.prepare(ids.device), generator)
