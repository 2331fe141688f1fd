"""The swap kernels: SSE-SE and SSE-Graph against binomial and chi-square bounds and the reference loops."""

import math
import random
from collections import Counter

import pytest
import scipy.stats
import torch
from scipy import stats

from graph_helpers import ADJACENCY, all_tokens, generator
from sse_hf.sampling import SSEGraphTables, Swap, candidate_positions, swap_graph, swap_uniform
from sse_hf.sampling_reference import swap_graph_reference, swap_uniform_reference

TABLE = 40
CANDIDATES = list(range(4, 24))  # 20 candidates; 0-3 are "special", 24-39 are padded rows never used
PROTECTED = [0, 1, 2, 3]


def _tables():
    candidates = torch.tensor(CANDIDATES)
    return candidates, candidate_positions(candidates, TABLE)


def _batch(rows=512, cols=128, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 24, (rows, cols), generator=generator)
    ids[:, 0] = 2  # a [CLS]-like id
    ids[:, -8:] = 0  # padding
    return ids


def test_realised_rate_is_within_five_sigma_of_p():
    candidates, positions = _tables()
    ids = _batch()
    for p in (0.01, 0.1, 0.5):
        swap = swap_uniform(ids, p, candidates, positions, torch.Generator().manual_seed(1))
        n = int(swap.eligible.sum())
        assert n == ids.numel() - 9 * ids.shape[0]
        sigma = (n * p * (1 - p)) ** 0.5
        assert abs(int(swap.swapped.sum()) - n * p) < 5 * sigma


def test_protected_ids_are_never_touched_and_replacements_never_equal_the_original():
    candidates, positions = _tables()
    ids = _batch()
    swap = swap_uniform(ids, 0.9, candidates, positions, torch.Generator().manual_seed(2))
    protected = torch.isin(ids, torch.tensor(PROTECTED))
    assert torch.equal(swap.ids[protected], ids[protected])
    assert not swap.swapped[protected].any()
    assert torch.all(swap.ids[swap.swapped] != ids[swap.swapped])
    assert torch.equal(swap.swapped, swap.ids != ids)
    assert torch.isin(swap.ids[swap.swapped], candidates).all()


def test_replacements_are_uniform_over_the_other_candidates():
    candidates, positions = _tables()
    ids = torch.full((200_000,), 10)
    swap = swap_uniform(ids, 1.0, candidates, positions, torch.Generator().manual_seed(3))
    counts = torch.bincount(swap.ids, minlength=TABLE)
    others = [c for c in CANDIDATES if c != 10]
    assert counts[10] == 0 and counts[[i for i in range(TABLE) if i not in others]].sum() == 0
    assert stats.chisquare(counts[others].numpy()).pvalue > 1e-3


def test_p_zero_changes_nothing_and_p_one_swaps_every_candidate():
    candidates, positions = _tables()
    ids = _batch(rows=16)
    unchanged = swap_uniform(ids, 0.0, candidates, positions)
    assert unchanged.ids is ids and not unchanged.swapped.any()
    everything = swap_uniform(ids, 1.0, candidates, positions)
    assert torch.equal(everything.swapped, everything.eligible)
    assert torch.all(everything.ids[everything.eligible] != ids[everything.eligible])


def test_input_is_not_modified_in_place():
    candidates, positions = _tables()
    ids = _batch(rows=8)
    before = ids.clone()
    swap_uniform(ids, 0.5, candidates, positions)
    assert torch.equal(ids, before)


def test_int32_ids_empty_batches_and_special_only_batches():
    candidates, positions = _tables()
    ids32 = _batch(rows=8).int()
    swap = swap_uniform(ids32, 0.5, candidates, positions)
    assert swap.ids.dtype == torch.int32 and swap.swapped.any()
    empty = torch.empty(0, 7, dtype=torch.long)
    assert swap_uniform(empty, 0.5, candidates, positions).ids.shape == (0, 7)
    special = torch.tensor([[2, 0, 0, 3]])
    result = swap_uniform(special, 1.0, candidates, positions)
    assert torch.equal(result.ids, special) and not result.swapped.any()


def test_same_generator_seed_gives_the_same_swaps():
    candidates, positions = _tables()
    ids = _batch(rows=8)
    first = swap_uniform(ids, 0.3, candidates, positions, torch.Generator().manual_seed(5)).ids
    second = swap_uniform(ids, 0.3, candidates, positions, torch.Generator().manual_seed(5)).ids
    assert torch.equal(first, second)


def test_fast_kernel_matches_the_reference_distribution():
    """Transition counts (original -> replacement) of both samplers come from the same distribution."""
    rows = [[2, 4, 5, 6, 7, 0]] * 4000
    p = 0.3
    reference = swap_uniform_reference(rows, p, CANDIDATES, random.Random(0))
    candidates, positions = _tables()
    fast = swap_uniform(torch.tensor(rows), p, candidates, positions, torch.Generator().manual_seed(0)).ids.tolist()

    def transitions(result):
        return Counter((a, b) for row, new in zip(rows, result) for a, b in zip(row, new))

    ref_counts, fast_counts = transitions(reference), transitions(fast)
    for source in (4, 5, 6, 7):
        keys = sorted({k for k in ref_counts | fast_counts if k[0] == source})
        table = [[ref_counts[k] for k in keys], [fast_counts[k] for k in keys]]
        assert stats.chi2_contingency(table).pvalue > 1e-3
        kept = fast_counts[(source, source)] / 4000
        assert abs(kept - (1 - p)) < 5 * (p * (1 - p) / 4000) ** 0.5
    assert ref_counts[(2, 2)] == fast_counts[(2, 2)] == 4000  # protected in both


def test_reference_honours_p_bounds():
    rows = [[4, 5, 0, 6]]
    assert swap_uniform_reference(rows, 0.0, CANDIDATES, random.Random(0)) == rows
    swapped = swap_uniform_reference(rows, 1.0, CANDIDATES, random.Random(0))[0]
    assert swapped[2] == 0 and all(a != b for a, b in zip(rows[0], swapped) if a != 0)


def test_swap_traces_without_graph_breaks():
    """fullgraph tracing fails on .item(), .tolist() or data-dependent shapes: the kernel has none."""
    candidates, positions = _tables()
    compiled = torch.compile(
        lambda ids: swap_uniform(ids, 0.2, candidates, positions), fullgraph=True, backend="eager"
    )
    ids = _batch(rows=4)
    result = compiled(ids)
    assert result.ids.shape == ids.shape and torch.equal(result.swapped, result.ids != ids)


def test_candidate_positions_validation():
    with pytest.raises(ValueError, match=r"lie in \[0, 10\)"):
        candidate_positions(torch.tensor([3, 12]), 10)
    with pytest.raises(ValueError, match="unique"):
        candidate_positions(torch.tensor([3, 3]), 10)
    with pytest.raises(ValueError, match="1-D"):
        candidate_positions(torch.tensor([[3]]), 10)
    positions = candidate_positions(torch.tensor([7, 2]), 10)
    assert positions.tolist() == [-1, -1, 1, -1, -1, -1, -1, 0, -1, -1]


# ----- SSE-Graph ----------------------------------------------------------------------------------
def test_swaps_land_on_neighbours_at_rate_p_with_edge_weight_frequencies(graph):
    ids, p = all_tokens(), 0.3
    swap = swap_graph(ids, p, graph, generator(0))
    assert isinstance(swap, Swap) and swap.ids.shape == ids.shape and swap.ids.dtype == ids.dtype
    has_neighbours = torch.isin(ids, torch.tensor(list(ADJACENCY)))
    assert torch.equal(swap.eligible, has_neighbours)
    assert not swap.swapped[~has_neighbours].any()
    assert torch.equal(swap.ids[~swap.swapped], ids[~swap.swapped])
    assert torch.equal(swap.swapped, swap.ids != ids)  # no self-loops: every swap changes the token
    for old, new in zip(ids[swap.swapped].tolist(), swap.ids[swap.swapped].tolist()):
        assert new in ADJACENCY[old]
    # Total rate among tokens with neighbours: within 5 binomial sigmas of p.
    n, k = int(has_neighbours.sum()), int(swap.swapped.sum())
    assert abs(k - n * p) < 5 * math.sqrt(n * p * (1 - p))
    # Frequencies of each neighbour: chi-square against the edge weights.
    for token, neighbours in ADJACENCY.items():
        landed = swap.ids[swap.swapped & (ids == token)]
        observed = [int((landed == target).sum()) for target in neighbours]
        total_weight = sum(neighbours.values())
        expected = [sum(observed) * w / total_weight for w in neighbours.values()]
        if len(observed) > 1:
            assert scipy.stats.chisquare(observed, expected).pvalue > 1e-3, (token, observed, expected)


def test_p_zero_changes_nothing_and_p_one_swaps_every_token_with_neighbours(graph):
    ids = all_tokens((20, 30))
    none = swap_graph(ids, 0.0, graph, generator())
    assert torch.equal(none.ids, ids) and not none.swapped.any()
    assert torch.equal(none.eligible, torch.isin(ids, torch.tensor(list(ADJACENCY))))
    every = swap_graph(ids, 1.0, graph, generator())
    assert torch.equal(every.swapped, every.eligible)
    assert (every.ids[every.eligible] != ids[every.eligible]).all()
    assert torch.equal(every.ids[~every.eligible], ids[~every.eligible])


def test_int32_ids_and_empty_batches(graph):
    ids = all_tokens((8, 16))
    wide = swap_graph(ids, 0.5, graph, generator(3))
    narrow = swap_graph(ids.to(torch.int32), 0.5, graph, generator(3))
    assert narrow.ids.dtype == torch.int32
    assert torch.equal(narrow.ids.long(), wide.ids) and torch.equal(narrow.swapped, wide.swapped)
    for shape in [(0,), (2, 0), (0, 7)]:
        empty = swap_graph(torch.zeros(shape, dtype=torch.long), 0.5, graph, generator())
        assert empty.ids.shape == empty.swapped.shape == empty.eligible.shape == shape
    assert not swap_graph(ids, 0.5, graph, generator()).ids.data_ptr() == ids.data_ptr()
    assert torch.equal(ids, all_tokens((8, 16)))  # the input is never modified


def test_sampler_never_syncs_and_allocates_nothing_larger_than_the_batch(graph):
    # On the meta device every data-dependent op (.item(), nonzero, masked_select) raises: none may run.
    on_meta = swap_graph(torch.zeros(4, 6, dtype=torch.long, device="meta"), 0.5, graph.to("meta"))
    assert on_meta.ids.shape == on_meta.swapped.shape == (4, 6) and on_meta.ids.device.type == "meta"
    moved = graph.to("meta")  # only the five tables the kernel reads move; the CSR stays on the CPU, uncopied
    assert all(getattr(moved, name).device.type == "meta" for name in SSEGraphTables.__annotations__)
    assert moved.neighbors is graph.neighbors and moved.offsets is graph.offsets
    from torch.utils._python_dispatch import TorchDispatchMode

    class LargestOutput(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for tensor in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(tensor, torch.Tensor):
                    LargestOutput.largest = max(LargestOutput.largest, tensor.numel())
            return out

    big = graph.resized(100_000)  # tables far larger than the batch
    ids = torch.randint(0, 10, (3, 5))
    with LargestOutput():
        swap_graph(ids, 0.5, big, generator())
    assert LargestOutput.largest == ids.numel()


def test_fast_sampler_agrees_in_distribution_with_the_reference(graph):
    ids, p = all_tokens((40, 250), seed=2), 0.4
    fast = swap_graph(ids, p, graph, generator(5)).ids
    slow = torch.tensor(swap_graph_reference(ids.tolist(), p, ADJACENCY, random.Random(5)))
    for token in range(graph.vocab_size):
        where = ids == token
        outcomes = sorted(set(fast[where].tolist()) | set(slow[where].tolist()))
        if len(outcomes) < 2:
            assert outcomes == [token] or not outcomes  # never swapped, by either
            continue
        table = [[int((sample[where] == o).sum()) for o in outcomes] for sample in (fast, slow)]
        assert scipy.stats.chi2_contingency(table).pvalue > 1e-3, (token, outcomes, table)


def test_reference_sampler_accepts_a_graph_or_a_mapping(graph):
    ids = all_tokens((5, 7)).tolist()
    assert swap_graph_reference(ids, 0.0, graph, random.Random(0)) == ids
    swapped = swap_graph_reference(ids, 1.0, graph, random.Random(0))
    for row, new_row in zip(ids, swapped):
        for old, new in zip(row, new_row):
            assert new in ADJACENCY[old] if old in ADJACENCY else new == old
