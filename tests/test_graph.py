"""SSEGraph's structure: CSR checks, alias tables, resizing and exclusion, save and load, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse
import scipy.stats
import torch

from graph_helpers import assert_same_graph, generator
from sse_hf.graph import SSEGraph, _alias_tables
from sse_hf.sampling import swap_graph


def test_alias_tables_reproduce_every_rows_probabilities_exactly():
    rng = np.random.default_rng(0)
    for trial in range(60):
        vocab_size, edges = int(rng.integers(2, 30)), int(rng.integers(1, 150))
        choices = [rng.random(edges), np.ones(edges), rng.random(edges) ** 8, rng.integers(0, 3, edges) + 0.0]
        weights = choices[trial % 4]  # random, uniform, very skewed, with zeros
        sources, targets = rng.integers(0, vocab_size, edges), rng.integers(0, vocab_size, edges)
        if not ((sources != targets) & (weights > 0)).any():
            continue
        graph = SSEGraph.from_edges(sources, targets, weights, vocab_size=vocab_size)
        keep, alias = (t.numpy() for t in _alias_tables(graph.offsets, graph.probabilities()))
        probabilities, offsets = graph.probabilities().numpy(), graph.offsets.tolist()
        for row in range(vocab_size):
            start, end = offsets[row], offsets[row + 1]
            assert ((alias[start:end] >= start) & (alias[start:end] < end)).all()
            mass = keep[start:end].copy()
            np.add.at(mass, alias[start:end] - start, 1.0 - keep[start:end])
            np.testing.assert_allclose(mass / max(end - start, 1), probabilities[start:end], atol=1e-12)


def test_self_loops_dropped_and_duplicate_edges_summed():
    graph = SSEGraph.from_edges([1, 1, 1, 1, 2], [1, 2, 3, 2, 1], [9.0, 1.0, 1.0, 2.0, 1.0], vocab_size=4)
    assert_same_graph(graph.to_dict(), {1: {2: 0.75, 3: 0.25}, 2: {1: 1.0}})
    assert graph.num_edges == 3
    # Rows on wildly different weight scales keep exact proportions (weights go through float64 only).
    scales = SSEGraph.from_edges([0, 0, 1, 1], [1, 2, 0, 2], [1e12, 3e12, 1e-9, 3e-9], vocab_size=3)
    assert scales.to_dict() == {0: {1: 0.25, 2: 0.75}, 1: {0: 0.25, 2: 0.75}}


def test_resized_pads_with_untouched_rows_and_excluding_renormalises(graph):
    padded = graph.resized(16)
    ids = torch.arange(16).repeat(10, 1)
    swap = swap_graph(ids, 1.0, padded, generator())
    assert not swap.swapped[:, 10:].any()
    assert torch.equal(swap.eligible[0], torch.isin(torch.arange(16), torch.tensor([1, 2, 5])))
    with pytest.raises(ValueError, match="Cannot shrink the graph from 10 to 4 ids"):
        graph.resized(4)
    assert graph.resized(8).vocab_size == 8
    without = graph.excluding([4, 2])
    assert_same_graph(without.to_dict(), {1: {3: 1.0}, 5: {6: 0.25, 7: 0.75}})
    assert graph.to("cpu") is graph
    with pytest.raises(ValueError, match="no edges left once the 3 excluded ids"):
        graph.excluding([1, 2, 5])


def test_saved_and_loaded_graph_samples_identically(tmp_path):
    table = torch.randn(50, 8, generator=generator(11))
    graph = SSEGraph.from_embeddings(table, k=5, exclude_token_ids=[0, 1])
    path = graph.save(tmp_path / "cache" / "graph.safetensors")
    loaded = SSEGraph.load(path)
    assert loaded.metadata == graph.metadata and loaded.vocab_size == 50 and loaded.metadata["k"] == 5
    for name in ("offsets", "neighbors", "cumulative_weights", "alias_threshold", "alias_table"):
        assert torch.equal(getattr(loaded, name), getattr(graph, name))
    ids = torch.randint(0, 50, (16, 64), generator=generator(12))
    assert torch.equal(swap_graph(ids, 0.3, loaded, generator(9)).ids, swap_graph(ids, 0.3, graph, generator(9)).ids)
    assert torch.equal(SSEGraph.from_file(path).neighbors, graph.neighbors)


def test_load_rejects_other_files(tmp_path):
    from safetensors.torch import save_file

    other = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(ValueError, match="not an SSE graph file"):
        SSEGraph.load(other)
    with pytest.raises(FileNotFoundError, match="No SSE graph file"):
        SSEGraph.load(tmp_path / "missing.safetensors")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SSEGraph.from_dict({1: [12]}, vocab_size=10), r"token id 12 .*vocabulary of 10 ids"),
        (lambda: SSEGraph.from_dict({-1: [2]}, vocab_size=10), r"token id -1 .*vocabulary of 10 ids"),
        (lambda: SSEGraph.from_dict({1: {2: -1.0}}, vocab_size=10), r"non-negative.*-1\.0 on the edge 1 -> 2"),
        (lambda: SSEGraph.from_dict({1: {2: math.nan}}, vocab_size=10), r"finite.*nan"),
        (lambda: SSEGraph.from_dict({1: {2: math.inf}}, vocab_size=10), r"finite.*inf"),
        (lambda: SSEGraph.from_dict({}, vocab_size=10), "no edges"),
        (lambda: SSEGraph.from_dict({1: [1], 2: {3: 0.0}}, vocab_size=10), r"no edges.*1 self-loops.*1 zero-weight"),
        (lambda: SSEGraph.from_dict({"good": ["great"]}, vocab_size=10), "needs a tokenizer"),
        (lambda: SSEGraph.from_dict({1: [2]}), "Cannot tell the vocabulary size"),
        (lambda: SSEGraph.from_scipy(scipy.sparse.eye(3, 4, format="csr")), r"square.*\(3, 4\)"),
        (lambda: SSEGraph.from_scipy(scipy.sparse.eye(3, format="csr"), vocab_size=5), r"shape \(3, 3\).*5 ids"),
        (lambda: SSEGraph.from_embeddings(torch.randn(10, 4), k=0), r"1 <= k < 10"),
        (lambda: SSEGraph.from_embeddings(torch.randn(10, 4), k=8, exclude_token_ids=[0, 1]), r"1 <= k < 8"),
        (lambda: SSEGraph.from_embeddings(torch.randn(10), k=2), r"matrix \[vocab_size, dim\]"),
        (lambda: SSEGraph.from_embeddings(torch.full((4, 2), math.nan), k=1), "NaN or infinite"),
        (lambda: SSEGraph.from_embeddings(torch.randn(10, 4), k=2, vocab_size=12), "only 10 rows"),
        (lambda: SSEGraph.from_embeddings(torch.randn(10, 4), k=2, temperature=0.0), "temperature"),
        (lambda: SSEGraph.from_embeddings(torch.randn(10, 4), k=2, weighting="rank"), "weighting"),
    ],
)
def test_bad_graphs_fail_with_a_clear_message(build, message):
    with pytest.raises(ValueError, match=message):
        build()
