"""SSE-SE sampling: the fast kernel against binomial and chi-square bounds and the reference loop."""

import random
from collections import Counter

import pytest
import torch
from scipy import stats

from sse_hf.sampling import candidate_positions, swap_uniform, swap_uniform_reference

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
