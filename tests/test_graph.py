"""SSE-Graph: the fast sampler against edge weights and the loop oracle, graph sources, kNN, save/load, errors."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import scipy.sparse
import scipy.stats
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from sse_hf.graph import SSEGraph, _alias_tables, prepare_graph, swap_graph, swap_graph_reference
from sse_hf.sampling import Swap
from sse_hf.vocabulary import tokenizer_protected_ids

# Token 1 has three weighted neighbours, 2 and 5 have one or two, 0, 3, 4, 6..9 have none.
ADJACENCY = {1: {2: 1.0, 3: 2.0, 4: 5.0}, 2: {1: 1.0}, 5: {6: 1.0, 7: 3.0}}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "good", "great", "fine", "bad", "poor", "ok"]


@pytest.fixture
def graph() -> SSEGraph:
    return SSEGraph.from_dict(ADJACENCY, vocab_size=10)


@pytest.fixture
def tokenizer(tmp_path) -> BertTokenizer:
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return BertTokenizer(str(path))


def assert_same_graph(actual: dict, expected: dict) -> None:
    """`{token: {neighbour: probability}}` equal in keys and (approximately) in probabilities."""
    assert actual.keys() == expected.keys()
    for token, neighbours in expected.items():
        assert actual[token] == pytest.approx(neighbours), token


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def all_tokens(shape=(200, 500), vocab_size=10, seed=1) -> torch.Tensor:
    return torch.randint(0, vocab_size, shape, generator=generator(seed))


# ----- the fast sampler -------------------------------------------------------------------------
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
    assert all(t.device.type == "meta" for t in vars(graph.to("meta")).values() if isinstance(t, torch.Tensor))
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


def test_reference_sampler_accepts_a_graph_or_a_mapping(graph):
    ids = all_tokens((5, 7)).tolist()
    assert swap_graph_reference(ids, 0.0, graph, random.Random(0)) == ids
    swapped = swap_graph_reference(ids, 1.0, graph, random.Random(0))
    for row, new_row in zip(ids, swapped):
        for old, new in zip(row, new_row):
            assert new in ADJACENCY[old] if old in ADJACENCY else new == old


# ----- graph sources ----------------------------------------------------------------------------
def test_from_dict_with_token_strings_lists_weights_and_ids(tokenizer):
    weighted = SSEGraph.from_dict({"good": {"great": 2.0, "fine": 1.0}, "bad": ["poor"]}, tokenizer=tokenizer)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in VOCAB}
    assert weighted.vocab_size == len(tokenizer)
    assert weighted.neighbors_of(ids["good"]) == pytest.approx({ids["great"]: 2 / 3, ids["fine"]: 1 / 3})
    assert weighted.neighbors_of(ids["bad"]) == {ids["poor"]: 1.0}
    assert weighted.neighbors_of(ids["great"]) == {}
    by_id = SSEGraph.from_dict({ids["good"]: [ids["great"], ids["fine"]]}, vocab_size=len(VOCAB))
    assert by_id.neighbors_of(ids["good"]) == pytest.approx({ids["great"]: 0.5, ids["fine"]: 0.5})
    both_ways = SSEGraph.from_dict({"good": ["great"]}, tokenizer=tokenizer, undirected=True)
    assert both_ways.to_dict() == {ids["good"]: {ids["great"]: 1.0}, ids["great"]: {ids["good"]: 1.0}}


def test_self_loops_dropped_and_duplicate_edges_summed():
    graph = SSEGraph.from_edges([1, 1, 1, 1, 2], [1, 2, 3, 2, 1], [9.0, 1.0, 1.0, 2.0, 1.0], vocab_size=4)
    assert_same_graph(graph.to_dict(), {1: {2: 0.75, 3: 0.25}, 2: {1: 1.0}})
    assert graph.num_edges == 3
    # Rows on wildly different weight scales keep exact proportions (weights go through float64 only).
    scales = SSEGraph.from_edges([0, 0, 1, 1], [1, 2, 0, 2], [1e12, 3e12, 1e-9, 3e-9], vocab_size=3)
    assert scales.to_dict() == {0: {1: 0.25, 2: 0.75}, 1: {0: 0.25, 2: 0.75}}


def test_unknown_tokens_warn_with_count_and_examples(tokenizer):
    with pytest.warns(UserWarning, match=r"2 token\(s\).*not in the vocabulary.*3 edge\(s\) were dropped.*'nope'"):
        graph = SSEGraph.from_dict(
            {"good": ["great", "nope"], "zilch": ["bad", "ok"], "[UNK]": ["ok"]}, tokenizer=tokenizer
        )
    unk, ok = tokenizer.unk_token_id, tokenizer.convert_tokens_to_ids("ok")
    assert graph.neighbors_of(unk) == {ok: 1.0}  # the unk token itself is a known token


def test_edge_files_tsv_and_jsonl(tmp_path, tokenizer):
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in VOCAB}
    tsv = tmp_path / "edges.tsv"
    tsv.write_text("source\ttarget\tweight\n# synonyms\ngood\tgreat\t3\n\ngood\tfine\t1\nbad\tpoor\n", encoding="utf-8")
    from_tsv = SSEGraph.from_edge_file(tsv, tokenizer=tokenizer)
    expected = {ids["good"]: {ids["great"]: 0.75, ids["fine"]: 0.25}, ids["bad"]: {ids["poor"]: 1.0}}
    assert_same_graph(from_tsv.to_dict(), expected)
    jsonl = tmp_path / "edges.jsonl"
    records = [{"source": "good", "target": "great", "weight": 3}, {"source": "good", "target": "fine"},
               {"source": ids["bad"], "target": ids["poor"], "weight": 0.5}]
    jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    assert_same_graph(SSEGraph.from_file(jsonl, tokenizer=tokenizer).to_dict(), expected)
    numeric = tmp_path / "ids.txt"
    numeric.write_text("1\t2\n2\t1\t4.5\n", encoding="utf-8")
    assert SSEGraph.from_file(numeric, vocab_size=3).to_dict() == {1: {2: 1.0}, 2: {1: 1.0}}
    mapping = tmp_path / "graph.json"
    mapping.write_text(json.dumps({"good": {"great": 3, "fine": 1}, "bad": ["poor"]}), encoding="utf-8")
    assert_same_graph(SSEGraph.from_file(mapping, tokenizer=tokenizer).to_dict(), expected)


def test_scipy_matrix_matches_the_same_graph_as_a_dict(graph):
    rows, cols, data = zip(*[(s, t, w) for s, ns in ADJACENCY.items() for t, w in ns.items()])
    matrix = scipy.sparse.csr_matrix((data, (rows, cols)), shape=(10, 10))
    from_matrix = SSEGraph.from_scipy(matrix)
    assert_same_graph(from_matrix.to_dict(), graph.to_dict())
    ids = all_tokens((16, 16))
    assert torch.equal(swap_graph(ids, 0.5, from_matrix, generator()).ids, swap_graph(ids, 0.5, graph, generator()).ids)


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


# ----- kNN graph from embeddings --------------------------------------------------------------
def brute_force_knn(table: torch.Tensor, k: int, excluded: set[int], temperature: float | None):
    """Full cosine matrix, argsort: {token: {neighbour: probability}} for every non-excluded token."""
    normed = table.double() / table.double().norm(dim=1, keepdim=True)
    cosine = (normed @ normed.T).numpy()
    keep = [i for i in range(table.shape[0]) if i not in excluded]
    expected = {}
    for i in keep:
        others = [j for j in keep if j != i]
        ranked = sorted(others, key=lambda j: -cosine[i, j])[:k]
        sims = np.array([cosine[i, j] for j in ranked])
        weights = np.full(k, 1.0 / k) if temperature is None else np.exp((sims - sims.max()) / temperature)
        expected[i] = dict(zip(ranked, weights / weights.sum()))
    return expected


@pytest.mark.parametrize("chunk_size", [7, 1000])
def test_knn_graph_equals_brute_force_with_exclusions_and_chunking(chunk_size):
    table = torch.randn(40, 6, generator=generator(7), dtype=torch.float64)
    excluded = {0, 5, 39}
    graph = SSEGraph.from_embeddings(table, k=4, exclude_token_ids=excluded, chunk_size=chunk_size, temperature=0.2)
    expected = brute_force_knn(table, 4, excluded, temperature=0.2)
    actual = graph.to_dict()
    assert actual.keys() == expected.keys()
    for token, neighbours in expected.items():
        assert list(actual[token]) == list(neighbours)  # same neighbours, nearest first
        assert list(actual[token].values()) == pytest.approx(list(neighbours.values()))
    uniform = SSEGraph.from_embeddings(table.float(), k=4, exclude_token_ids=excluded, chunk_size=chunk_size,
                                       weighting="uniform")
    assert_same_graph(uniform.to_dict(), brute_force_knn(table, 4, excluded, temperature=None))
    assert graph.metadata["k"] == 4 and graph.metadata["excluded_ids"] == 3


def test_knn_graph_from_a_model_excludes_the_tokenizers_special_and_reserved_tokens(tokenizer):
    config = BertConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16)
    model = BertModel(config)  # 16 rows, tokenizer 12: the 4 padding rows are never sources or neighbours
    graph = SSEGraph.from_embeddings(model, k=2, tokenizer=tokenizer)
    protected = tokenizer_protected_ids(tokenizer)
    assert protected == {0, 1, 2, 3, 4, 5} and graph.vocab_size == len(tokenizer)
    expected = brute_force_knn(model.get_input_embeddings().weight.detach()[: len(tokenizer)], 2, protected, 0.1)
    assert set(graph.to_dict()) == set(expected) == set(range(6, 12))
    for token, neighbours in expected.items():
        assert set(graph.neighbors_of(token)) == set(neighbours)


# ----- what the hook calls ---------------------------------------------------------------------
def test_prepare_graph_accepts_every_source_and_keeps_special_tokens_out(tmp_path, tokenizer):
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in VOCAB}
    user = {"good": ["great", "[CLS]"], "[SEP]": ["bad"], "bad": ["poor"]}
    with pytest.warns(UserWarning, match="removed 2 of the graph's 4 edges"):
        graph = prepare_graph(user, table_size=16, tokenizer=tokenizer)
    assert graph.vocab_size == 16
    assert graph.to_dict() == {ids["good"]: {ids["great"]: 1.0}, ids["bad"]: {ids["poor"]: 1.0}}
    path = graph.save(tmp_path / "g.safetensors")
    assert prepare_graph(str(path), table_size=16, tokenizer=tokenizer).to_dict() == graph.to_dict()
    assert prepare_graph(graph, table_size=16) is graph
    matrix = scipy.sparse.csr_matrix(([1.0], ([6], [7])), shape=(12, 12))
    assert prepare_graph(matrix, table_size=12, tokenizer=tokenizer).to_dict() == {6: {7: 1.0}}
    model = BertModel(BertConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=16, max_position_embeddings=16))
    knn = prepare_graph("knn", table_size=16, tokenizer=tokenizer, model=model, k=3, exclude_token_ids=[11])
    assert knn.vocab_size == 16 and set(knn.to_dict()) == set(range(6, 11)) and knn.metadata["k"] == 3
    with pytest.raises(ValueError, match="Cannot shrink the graph from 12 to 8 ids"):
        prepare_graph({"good": ["ok"]}, table_size=8, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="pass model="):
        prepare_graph("knn", table_size=16, tokenizer=tokenizer)
    with pytest.raises(TypeError, match="graph must be"):
        prepare_graph(3.5, table_size=16)


# ----- save and load ----------------------------------------------------------------------------
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


# ----- clear errors -----------------------------------------------------------------------------
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


def test_bad_edge_files_name_the_line(tmp_path, tokenizer):
    bad_weight = tmp_path / "w.tsv"
    bad_weight.write_text("good\tgreat\theavy\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 1: the weight 'heavy' is not a number"):
        SSEGraph.from_edge_file(bad_weight, tokenizer=tokenizer)
    not_ids = tmp_path / "ids.tsv"
    not_ids.write_text("1\t2\ngood\tgreat\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2: 'good' is not an integer token id"):
        SSEGraph.from_edge_file(not_ids, vocab_size=10)
    bad_json = tmp_path / "e.jsonl"
    bad_json.write_text('{"source": 1, "target": 2}\n{"source": 1}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: expected an object"):
        SSEGraph.from_edge_file(bad_json, vocab_size=10)
    csv = tmp_path / "edges.csv"
    csv.write_text("1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="Cannot tell the format"):
        SSEGraph.from_edge_file(csv, vocab_size=10)
