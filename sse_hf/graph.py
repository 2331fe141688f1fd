"""SSE-Graph's transition table: which tokens a token may be swapped for, and how often.

An `SSEGraph` is a weighted, directed token graph stored once in compact CSR form on the CPU (`offsets`,
`neighbors`, per-row `cumulative_weights`), from which it derives the five per-slot Walker alias tables
the sampling function `sse_hf.sampling.swap_graph` reads; `to(device)` copies only those five. It is built
with `from_edges` from id arrays, or from what `sse_hf.graph_sources` reads (mappings, files, scipy matrices
into `Edges`, built once by `from_source_edges`; the model's own embeddings into kNN rows).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from . import graph_sources
from .sampling import ALIAS_BITS
from .validation import check_positive_int

GRAPH_FORMAT = "sse_hf.graph"
GRAPH_FORMAT_VERSION = "1"

# What swap_graph reads, per device (see sse_hf.sampling.SSEGraphTables); the CSR itself stays on the CPU.
_SAMPLING_TABLES = ("row_start", "row_degree", "alias_threshold", "neighbor_table", "alias_table")
_ALIAS_SCALE = 1 << ALIAS_BITS
# Scaled weights within this of 1 count as "large" in the alias build, so float rounding never leaves a
# row with deficits and no surplus to cover them.
_ALIAS_TOLERANCE = 1e-9


class SSEGraph:
    """A weighted directed token graph in CSR form, ready for `swap_graph`.

    Row `r` holds the neighbours `neighbors[offsets[r]:offsets[r + 1]]` of token id `r`; their
    `cumulative_weights` rise to exactly 1 within the row (the transition probabilities, summed).
    A row without edges is a token that is never swapped. Build one with the `from_*` classmethods;
    the constructor validates the raw tensors (e.g. after `load`), builds on the CPU and derives the
    alias tables the sampler reads; `to(device)` copies those tables only.
    """

    def __init__(
        self,
        offsets: torch.Tensor,
        neighbors: torch.Tensor,
        cumulative_weights: torch.Tensor,
        metadata: Mapping[str, Any] | None = None,
    ):
        offsets = torch.as_tensor(offsets).detach().to("cpu", torch.int64)
        neighbors = torch.as_tensor(neighbors).detach().to("cpu", torch.int64)
        cumulative_weights = torch.as_tensor(cumulative_weights).detach().to("cpu", torch.float64)
        _check_csr(offsets, neighbors, cumulative_weights)
        self.offsets = offsets
        self.neighbors = neighbors
        self.cumulative_weights = cumulative_weights
        self.metadata = dict(metadata or {})
        self._build_sampling_tables()

    def _build_sampling_tables(self) -> None:
        """Derive the per-device tables `swap_graph` reads; deterministic, so a loaded graph samples the same.

        `row_start` and `row_degree` are per token id; `alias_threshold`, `neighbor_table` and
        `alias_table` are per slot, with one padding slot at the end so tokens without neighbours
        (degree 0, slot = start) never index out of range.
        """
        degrees = self.offsets[1:] - self.offsets[:-1]
        self.row_start = self.offsets[:-1].clone()
        self.row_degree = degrees
        keep, alias = _alias_tables(self.offsets, self.probabilities())
        pad = self.neighbors.new_zeros(1)
        self.alias_threshold = torch.cat([torch.round(keep * _ALIAS_SCALE).to(torch.int64), pad])
        self.neighbor_table = torch.cat([self.neighbors, pad])
        self.alias_table = torch.cat([self.neighbors[alias], pad])

    # ----- shape and inspection ---------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Number of token ids the graph covers (rows); ids at or past it must not reach `swap_graph`."""
        return self.offsets.numel() - 1

    @property
    def num_edges(self) -> int:
        return self.neighbors.numel()

    @property
    def device(self) -> torch.device:
        """Where the sampling tables live (the CSR stays on the CPU)."""
        return self.row_start.device

    @property
    def has_neighbors(self) -> torch.Tensor:
        """Per token id (CPU): True where the token has neighbours, i.e. can be swapped."""
        return self.degrees() > 0

    def degrees(self) -> torch.Tensor:
        """Number of neighbours of every token id, shape [vocab_size]."""
        return self.offsets[1:] - self.offsets[:-1]

    def probabilities(self) -> torch.Tensor:
        """The transition probability of every edge (float64, [num_edges]); each non-empty row sums to 1."""
        previous = torch.cat([self.cumulative_weights.new_zeros(1), self.cumulative_weights[:-1]])
        starts = self.offsets[:-1][self.has_neighbors]
        previous[starts] = 0.0
        return self.cumulative_weights - previous

    def neighbors_of(self, token_id: int) -> dict[int, float]:
        """`{neighbour id: transition probability}` of one token (empty if it has none). For inspection."""
        if not 0 <= int(token_id) < self.vocab_size:
            raise ValueError(f"token id {token_id} is outside the graph's vocabulary of {self.vocab_size} ids.")
        start, end = (int(x) for x in self.offsets[int(token_id) : int(token_id) + 2].tolist())
        probabilities = self.probabilities()[start:end].tolist()
        return dict(zip(self.neighbors[start:end].tolist(), probabilities))

    def to_dict(self) -> dict[int, dict[int, float]]:
        """`{token id: {neighbour id: probability}}` for every token with neighbours (slow; for tests and export)."""
        offsets = self.offsets.tolist()
        neighbors = self.neighbors.tolist()
        probabilities = self.probabilities().tolist()
        return {
            row: dict(zip(neighbors[offsets[row] : offsets[row + 1]], probabilities[offsets[row] : offsets[row + 1]]))
            for row in range(self.vocab_size)
            if offsets[row + 1] > offsets[row]
        }

    def __repr__(self) -> str:
        eligible = int(self.has_neighbors.sum())
        source = self.metadata.get("source", "custom")
        return (
            f"SSEGraph({source}, vocab_size={self.vocab_size}, tokens_with_neighbors={eligible}, "
            f"edges={self.num_edges}, device={self.device})"
        )

    # ----- copies -----------------------------------------------------------------------------
    def to(self, device: torch.device | str) -> SSEGraph:
        """A copy on `device` (or self if already there). Cache one per device; moving is a host-device copy."""
        device = torch.device(device)
        if self.device == device:
            return self
        copy = object.__new__(SSEGraph)
        copy.offsets, copy.neighbors, copy.cumulative_weights = self.offsets, self.neighbors, self.cumulative_weights
        for name in _SAMPLING_TABLES:
            setattr(copy, name, getattr(self, name).to(device))
        copy.metadata = dict(self.metadata)
        return copy

    def resized(self, vocab_size: int) -> SSEGraph:
        """The same graph over `vocab_size` ids: extra rows (a padded embedding table) get no neighbours.

        Shrinking is allowed only when no edge touches the ids removed.
        """
        vocab_size = check_positive_int("vocab_size", vocab_size)
        if vocab_size == self.vocab_size:
            return self
        if vocab_size < self.vocab_size:
            last_row = int(self.offsets[vocab_size])
            if last_row != self.num_edges or (self.num_edges and int(self.neighbors.max()) >= vocab_size):
                raise ValueError(
                    f"Cannot shrink the graph from {self.vocab_size} to {vocab_size} ids: some of its edges start or "
                    f"end at ids >= {vocab_size}. The graph was built for a larger vocabulary than this model's."
                )
            offsets = self.offsets[: vocab_size + 1]
        else:
            padding = self.offsets[-1:].expand(vocab_size - self.vocab_size)
            offsets = torch.cat([self.offsets, padding])
        metadata = {**self.metadata, "vocab_size": vocab_size}
        return SSEGraph(offsets, self.neighbors, self.cumulative_weights, metadata).to(self.device)

    def excluding(self, token_ids: Iterable[int]) -> SSEGraph:
        """The graph without these ids, neither as sources nor as neighbours; rows are renormalised.

        Use it to keep special, padding and reserved tokens out of a user graph.
        """
        ids = sorted({int(i) for i in token_ids if 0 <= int(i) < self.vocab_size})
        if not ids:
            return self
        graph = self.to("cpu")
        excluded = torch.zeros(graph.vocab_size, dtype=torch.bool)
        excluded[torch.tensor(ids, dtype=torch.long)] = True
        sources = torch.repeat_interleave(torch.arange(graph.vocab_size), graph.degrees())
        keep = ~(excluded[sources] | excluded[graph.neighbors])
        if bool(keep.all()):
            return self
        if not bool(keep.any()):
            raise ValueError(
                f"The graph has no edges left once the {len(ids)} excluded ids (special, padding, reserved or "
                "user-excluded tokens) are removed, so SSE-Graph would never swap. Check that the graph's tokens "
                "match this tokenizer."
            )
        return SSEGraph.from_edges(
            sources[keep],
            graph.neighbors[keep],
            graph.probabilities()[keep],
            vocab_size=graph.vocab_size,
            metadata={**graph.metadata, "excluded_ids": len(ids)},
        ).to(self.device)

    # ----- save and load ----------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> str:
        """Write the CSR tensors and metadata to a `.safetensors` file (no pickle); returns the path."""
        from safetensors.torch import save_file

        path = os.fspath(path)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        tensors = {
            "offsets": self.offsets.detach().cpu().contiguous(),
            "neighbors": self.neighbors.detach().cpu().contiguous(),
            "cumulative_weights": self.cumulative_weights.detach().cpu().contiguous(),
        }
        header = {
            "format": GRAPH_FORMAT,
            "format_version": GRAPH_FORMAT_VERSION,
            "vocab_size": str(self.vocab_size),
            "num_edges": str(self.num_edges),
            "metadata": json.dumps(self.metadata, sort_keys=True, default=str),
        }
        save_file(tensors, path, metadata=header)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> SSEGraph:
        """Read a graph written by `save`; it samples exactly as the saved one under the same seed."""
        from safetensors import safe_open

        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No SSE graph file at {path}. Write one with SSEGraph.save(path).")
        try:
            with safe_open(path, framework="pt", device="cpu") as handle:
                header = handle.metadata() or {}
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not a dict)
        except Exception as error:  # noqa: BLE001  (safetensors raises its own SafetensorError, not a ValueError)
            raise ValueError(
                f"{path} is not a readable .safetensors graph file ({error}): it is empty, truncated or of another "
                "format. Write it with SSEGraph.save(path), or give an edge list as .tsv/.jsonl."
            ) from None
        if header.get("format") != GRAPH_FORMAT:
            raise ValueError(f"{path} is not an SSE graph file (its header has no format={GRAPH_FORMAT!r}).")
        if header.get("format_version") != GRAPH_FORMAT_VERSION:
            raise ValueError(
                f"{path} is an SSE graph of format version {header.get('format_version')!r}; this sse_hf reads "
                f"version {GRAPH_FORMAT_VERSION}."
            )
        missing = sorted({"offsets", "neighbors", "cumulative_weights"} - set(tensors))
        if missing:
            raise ValueError(f"{path} is corrupt: it lacks the tensor(s) {missing}. Write it with SSEGraph.save.")
        try:
            metadata = json.loads(header.get("metadata", "{}"))
            graph = cls(tensors["offsets"], tensors["neighbors"], tensors["cumulative_weights"], metadata)
        except ValueError as error:
            raise ValueError(f"{path} is corrupt: {error} Write it again with SSEGraph.save.") from None
        if str(graph.vocab_size) != header.get("vocab_size") or str(graph.num_edges) != header.get("num_edges"):
            raise ValueError(f"{path} is corrupt: its tensors do not match the vocab_size/num_edges in its header.")
        return graph.to(device)

    # ----- building from what users have (read by sse_hf.graph_sources) ---------------------
    @classmethod
    def from_source_edges(cls, edges: graph_sources.Edges, *, undirected: bool = False) -> SSEGraph:
        """The graph of edges read by `sse_hf.graph_sources` (`read_edges`): the one place a user's graph is built."""
        return cls.from_edges(
            edges.sources,
            edges.targets,
            edges.weights,
            vocab_size=edges.vocab_size,
            undirected=undirected,
            metadata={"source": edges.origin, **({"reading": edges.reading} if edges.reading else {})},
        )

    @classmethod
    def from_dict(
        cls, mapping: Mapping[Any, Any], *, tokenizer=None, vocab_size: int | None = None, undirected: bool = False
    ) -> SSEGraph:
        """A graph from `{token: neighbours}`: `{"good": ["great", "fine"]}`, `{"good": {"great": 2.0}}`, `{12: [13]}`.

        Tokens are strings (converted with `tokenizer`) or integer ids. Tokens the tokenizer does not
        know are reported in one warning and their edges dropped. `vocab_size` defaults to `len(tokenizer)`.
        """
        edges = graph_sources.dict_edges(mapping, tokenizer=tokenizer, vocab_size=vocab_size)
        return cls.from_source_edges(edges, undirected=undirected)

    @classmethod
    def from_edge_file(
        cls, path: str | os.PathLike, *, tokenizer=None, vocab_size: int | None = None, undirected: bool = False
    ) -> SSEGraph:
        """A graph from an edge list: `.tsv`/`.txt` (`source<TAB>target[<TAB>weight]`) or `.jsonl`.

        TSV fields are token strings when a tokenizer is given, else integer ids; the header
        `source_id<TAB>target_id` or `source_token<TAB>target_token` says which, and a file of integers only is
        refused under a tokenizer without one. Blank lines and `#` comments are skipped. JSONL lines are objects
        `{"source": ..., "target": ..., "weight": ...}` whose tokens are strings or ints, as typed. The reading
        used is logged and kept in `metadata["reading"]`.
        """
        edges = graph_sources.edge_file_edges(path, tokenizer=tokenizer, vocab_size=vocab_size)
        return cls.from_source_edges(edges, undirected=undirected)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike, *, tokenizer=None, vocab_size: int | None = None, undirected: bool = False
    ) -> SSEGraph:
        """Any graph file by extension: `.safetensors` (`save`), `.tsv`/`.txt`/`.jsonl` edge lists, `.json` mapping."""
        path = os.fspath(path)
        if path.endswith(".safetensors"):
            graph = cls.load(path)
            return graph if vocab_size is None else graph.resized(vocab_size)
        edges = graph_sources.read_edges(path, tokenizer=tokenizer, vocab_size=vocab_size)
        return cls.from_source_edges(edges, undirected=undirected)

    @classmethod
    def from_scipy(cls, matrix: Any, *, vocab_size: int | None = None, undirected: bool = False) -> SSEGraph:
        """A graph from a V x V scipy sparse matrix whose entry (i, j) is the weight of edge i -> j."""
        return cls.from_source_edges(graph_sources.scipy_edges(matrix, vocab_size=vocab_size), undirected=undirected)

    @classmethod
    def from_embeddings(cls, embeddings: torch.Tensor | nn.Module, k: int = 10, **options: Any) -> SSEGraph:
        """Each token's `k` nearest neighbours by cosine similarity of its (pretrained) input embedding.

        `embeddings` is the weight matrix [rows, dim] or a model (its `get_input_embeddings()`).
        Excluded ids (`exclude_token_ids`, plus the special and reserved ids of `tokenizer` when given)
        are neither sources nor neighbours. Only the first `vocab_size` rows count (default
        `len(tokenizer)`, else all rows), so a padded table's extra rows are never drawn.
        Edge weights: `weighting="softmax"` gives neighbour j of i the weight
        softmax_j(cos(i, j) / temperature) over the k neighbours (nearer ones more often);
        `"uniform"` gives each 1/k. Computed on the weight's device, `chunk_size` rows at a time
        (memory about (chunk_size + dim) x vocab floats), never the full vocab x vocab matrix.
        Options (keyword only): `tokenizer`, `exclude_token_ids`, `vocab_size`, `weighting` ("softmax"),
        `temperature` (0.1), `chunk_size` (1024). A weight sharded by DeepSpeed ZeRO-3 or FSDP2 is gathered for
        the build, a collective: call it on every process (as `SSECallback` does).
        """
        offsets, neighbors, cumulative, metadata = graph_sources.knn_rows(embeddings, k, **options)
        return cls(offsets, neighbors, cumulative, metadata)

    @classmethod
    def from_edges(
        cls,
        sources: Any,
        targets: Any,
        weights: Any = None,
        *,
        vocab_size: int,
        undirected: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> SSEGraph:
        """A graph from parallel arrays of source ids, target ids and (optional, default 1) weights.

        Self-loops and zero-weight edges are dropped (a swap must change the token), duplicate edges
        are summed, each row is normalised to probabilities. `undirected=True` adds every reverse edge.
        """
        vocab_size = check_positive_int("vocab_size", vocab_size)
        sources = _as_id_tensor("sources", sources)
        targets = _as_id_tensor("targets", targets)
        if sources.shape != targets.shape:
            raise ValueError(
                f"sources and targets must have the same length, got {sources.numel()} and {targets.numel()}."
            )
        if weights is None:
            weights = torch.ones(sources.shape, dtype=torch.float64)
        else:
            if not isinstance(weights, torch.Tensor):  # lists would otherwise round through float32
                weights = torch.from_numpy(np.asarray(weights, dtype=np.float64))
            weights = weights.detach().to("cpu", torch.float64).reshape(-1)
            if weights.shape != sources.shape:
                raise ValueError(f"weights must have one value per edge ({sources.numel()}), got {weights.numel()}.")
        sources, targets = sources.cpu(), targets.cpu()
        _check_ids_in_range(sources, targets, vocab_size)
        bad = ~torch.isfinite(weights) | (weights < 0)
        if bool(bad.any()):
            index = int(bad.nonzero()[0])
            raise ValueError(
                f"Edge weights must be finite and non-negative, but {int(bad.sum())} are not; the first is "
                f"{float(weights[index])} on the edge {int(sources[index])} -> {int(targets[index])}."
            )
        if undirected:
            sources, targets = torch.cat([sources, targets]), torch.cat([targets, sources])
            weights = torch.cat([weights, weights])
        self_loops = sources == targets
        zero = weights == 0
        keep = ~(self_loops | zero)
        if not bool(keep.any()):
            raise ValueError(
                f"The graph has no edges to swap along: {sources.numel()} edges given, {int(self_loops.sum())} "
                f"self-loops and {int((zero & ~self_loops).sum())} zero-weight edges dropped. SSE-Graph needs at least "
                "one edge between two different tokens."
            )
        sources, targets, weights = sources[keep], targets[keep], weights[keep]
        # Sort by (source, target) and sum duplicates in one pass.
        keys, inverse = torch.unique(sources * vocab_size + targets, return_inverse=True)
        summed = torch.zeros(keys.numel(), dtype=torch.float64).index_add_(0, inverse, weights)
        rows, neighbors = keys // vocab_size, keys % vocab_size
        offsets = torch.zeros(vocab_size + 1, dtype=torch.int64)
        offsets[1:] = torch.cumsum(torch.bincount(rows, minlength=vocab_size), 0)
        info = {"source": "edges", "vocab_size": vocab_size, **(metadata or {})}
        return cls(offsets, neighbors, _row_cumulative(summed, offsets), info)


# ----- helpers --------------------------------------------------------------------------------
def _as_id_tensor(name: str, values: Any) -> torch.Tensor:
    tensor = torch.as_tensor(values).detach().reshape(-1)
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer token ids, got dtype {tensor.dtype}.")
    return tensor.to(torch.int64)


def _check_ids_in_range(sources: torch.Tensor, targets: torch.Tensor, vocab_size: int) -> None:
    """Raise naming the first edge whose source or target id lies outside [0, vocab_size)."""
    for role, ids in (("source", sources), ("target", targets)):
        bad = (ids < 0) | (ids >= vocab_size)
        if bool(bad.any()):
            index = int(bad.nonzero()[0])
            raise ValueError(
                f"The graph refers to token id {int(ids[index])} (the {role} of edge {int(sources[index])} -> "
                f"{int(targets[index])}), outside the vocabulary of {vocab_size} ids [0, {vocab_size}); "
                f"{int(bad.sum())} {role} id(s) are out of range. Was the graph built for another tokenizer?"
            )


def _check_csr(offsets: torch.Tensor, neighbors: torch.Tensor, cumulative: torch.Tensor) -> None:
    """Validate raw CSR tensors (shapes, monotone offsets, ids in range, rows ending at 1)."""
    if offsets.ndim != 1 or offsets.numel() < 2:
        raise ValueError(
            f"offsets must be a 1-D tensor of vocab_size + 1 >= 2 entries, got shape {tuple(offsets.shape)}."
        )
    if neighbors.ndim != 1 or cumulative.shape != neighbors.shape:
        raise ValueError(
            f"neighbors and cumulative_weights must be 1-D and of equal length, got shapes {tuple(neighbors.shape)} "
            f"and {tuple(cumulative.shape)}."
        )
    vocab_size = offsets.numel() - 1
    if neighbors.numel() == 0:
        raise ValueError("The graph has no edges: SSE-Graph needs at least one edge between two different tokens.")
    if int(offsets[0]) != 0 or int(offsets[-1]) != neighbors.numel() or bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError(
            f"offsets must rise from 0 to the number of edges ({neighbors.numel()}) without decreasing; "
            f"got {int(offsets[0])} to {int(offsets[-1])}."
        )
    bad = (neighbors < 0) | (neighbors >= vocab_size)
    if bool(bad.any()):
        raise ValueError(
            f"The graph refers to token id {int(neighbors[bad][0])} as a neighbour, outside the vocabulary of "
            f"{vocab_size} ids [0, {vocab_size})."
        )
    if not bool(torch.isfinite(cumulative).all()) or bool(((cumulative < 0) | (cumulative > 1 + 1e-9)).any()):
        raise ValueError("cumulative_weights must be finite and within [0, 1].")
    degrees = offsets[1:] - offsets[:-1]
    ends = offsets[1:][degrees > 0] - 1
    if bool((cumulative[ends] - 1).abs().gt(1e-6).any()):
        raise ValueError("cumulative_weights must end at 1 in every row that has neighbours.")
    rows = torch.repeat_interleave(torch.arange(vocab_size), degrees.cpu()).to(neighbors.device)
    previous = torch.cat([cumulative.new_zeros(1), cumulative[:-1]])
    previous[offsets[:-1][degrees > 0]] = 0.0
    if bool((cumulative < previous - 1e-12).any()):
        raise ValueError("cumulative_weights must not decrease within a row (weights must be non-negative).")
    if bool((neighbors == rows).any()):
        raise ValueError("The graph has self-loops: a token cannot be its own neighbour (a swap must change it).")


def _row_cumulative(weights: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Per-row cumulative sums of positive weights, normalised so each non-empty row ends at exactly 1."""
    degrees = offsets[1:] - offsets[:-1]
    rows = torch.repeat_interleave(torch.arange(degrees.numel()), degrees)
    totals = torch.zeros(degrees.numel(), dtype=torch.float64).index_add_(0, rows, weights)
    # Normalise first, so one global running sum (each row adds exactly 1) keeps every row equally precise.
    running = torch.cumsum(weights / totals[rows], 0)
    before = torch.cat([running.new_zeros(1), running])[offsets[:-1]]  # the running sum at each row's start
    cumulative = (running - before[rows]).clamp_(0.0, 1.0)
    cumulative[offsets[1:][degrees > 0] - 1] = 1.0
    return cumulative


def _alias_tables(offsets: torch.Tensor, probabilities: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Walker alias tables of every row at once: per slot, the probability to keep it and its alias slot.

    Row r with degree d picks slot i uniformly, keeps it with probability keep[i], else takes alias[i];
    neighbour i then comes up with probability (keep[i] + sum over slots s aliased to i of 1 - keep[s]) / d,
    which equals probabilities[i]. Built without a loop over rows: with q = d * probability, "small" slots
    (q < 1) lay their deficits 1 - q end to end, "large" slots lay their surpluses q - 1 end to end, both
    in slot order. Pouring the deficits into the surpluses in that order (Vose's sweep) gives: a small slot
    aliases the first large slot whose surplus run ends after the small's deficit run starts; a large
    slot keeps 1 - (overflow past its surplus end) and aliases the next large slot. One sort of the run
    ends per row finds both.
    """
    degrees = offsets[1:] - offsets[:-1]
    count = probabilities.numel()
    rows = torch.repeat_interleave(torch.arange(degrees.numel()), degrees).numpy()
    scaled = (probabilities * degrees.to(torch.float64)[rows]).numpy()
    small = scaled < 1.0 - _ALIAS_TOLERANCE
    deficit = np.where(small, 1.0 - scaled, 0.0)
    surplus = np.where(small, 0.0, np.maximum(scaled - 1.0, 0.0))
    starts = offsets[:-1].numpy()

    def row_cumsum(values: np.ndarray) -> np.ndarray:
        running = np.cumsum(values)
        before = np.concatenate([[0.0], running])[starts]
        return running - before[rows]

    deficit_end = row_cumsum(deficit)
    deficit_start = deficit_end - deficit
    surplus_end = row_cumsum(surplus)
    # One event per slot, sorted by (row, position, large-before-small, slot): a small slot's event is the
    # start of its deficit run, a large slot's event is the end of its surplus run.
    position = np.where(small, deficit_start, surplus_end)
    order = np.lexsort((np.arange(count), small, position, rows))
    ordered_large = ~small[order]
    ordered_rows = rows[order]
    index = np.arange(count)
    # Next large event at or after each event, and last small event at or before it (same row checked below).
    next_large = np.where(ordered_large, index, count)
    next_large = np.minimum.accumulate(next_large[::-1])[::-1]
    last_small = np.maximum.accumulate(np.where(ordered_large, -1, index))

    keep = np.where(small, scaled, 1.0)
    alias = np.arange(count)
    # Small slots: alias the next large slot in the row.
    target = np.minimum(next_large, count - 1)
    ok = ~ordered_large & (next_large < count) & (ordered_rows[target] == ordered_rows)
    alias[order[ok]] = order[target[ok]]
    orphan = ~ordered_large & ~ok  # only by float rounding at a row's end: keep the slot itself
    keep[order[orphan]] = 1.0
    # Large slots: keep 1 - overflow, alias the next large slot in the row.
    following = np.concatenate([next_large[1:], [count]])
    has_next = ordered_large & (following < count)
    has_next &= ordered_rows[np.minimum(following, count - 1)] == ordered_rows
    crossing = np.maximum(last_small, 0)
    has_small = ordered_large & (last_small >= 0) & (ordered_rows[crossing] == ordered_rows)
    overflow = np.where(has_small, deficit_end[order[crossing]] - surplus_end[order], 0.0)
    large_keep = np.clip(1.0 - overflow, 0.0, 1.0)
    large_keep = np.where(has_next, large_keep, 1.0)
    keep[order[ordered_large]] = large_keep[ordered_large]
    alias[order[has_next]] = order[following[has_next]]
    return torch.from_numpy(keep), torch.from_numpy(alias)
