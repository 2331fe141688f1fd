"""Swap throughput over a BERT-base vocabulary: SSE-SE's and SSE-Graph's sampling functions on the same batches,
one CPU thread. The cost and graph benchmarks both report it, measured here the one way."""

from __future__ import annotations

import statistics

import torch

from recipes.evidence.timing import median_seconds
from sse_hf import SSEGraph
from sse_hf.sampling import candidate_positions, swap_graph, swap_uniform

BERT_BASE = dict(
    vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
)
BERT_RESERVED = 999  # BERT-base: [PAD], [unused0..993], [UNK], [CLS], [SEP], [MASK] all sit below id 999
BATCH_SHAPES = ((32, 128), (8, 512))


def random_graph(vocab_size: int = BERT_BASE["vocab_size"], k: int = 10, seed: int = 0) -> SSEGraph:
    """A graph shaped like a kNN graph of a BERT vocabulary: k weighted neighbours for every real token."""
    generator = torch.Generator().manual_seed(seed)
    sources = torch.arange(BERT_RESERVED, vocab_size).repeat_interleave(k)
    targets = torch.randint(BERT_RESERVED, vocab_size, sources.shape, generator=generator)
    weights = torch.rand(sources.shape, generator=generator) + 0.1
    return SSEGraph.from_edges(sources, targets, weights, vocab_size=vocab_size)


def swap_throughput(
    graph: SSEGraph, p: float = 0.1, repeats: int = 5, calls: int = 200, shapes=BATCH_SHAPES
) -> dict[str, dict[str, float]]:
    """Million tokens per second of `swap_uniform` (SSE-SE, every id from BERT_RESERVED up a candidate) and
    `swap_graph` (SSE-Graph over `graph`) at `p`, per batch shape ("32x128"), on one thread.

    Each of `repeats` rounds times `calls` back-to-back calls of both, one after the other, so both see the same
    background load; the rate is that of the median round.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        vocab_size = graph.vocab_size
        candidates = torch.arange(BERT_RESERVED, vocab_size)
        positions = candidate_positions(candidates, vocab_size)
        generator = torch.Generator().manual_seed(0)
        results = {}
        for rows, cols in shapes:
            ids = torch.randint(BERT_RESERVED, vocab_size, (rows, cols), generator=generator)
            uniform, graph_times = [], []
            for _ in range(repeats):
                uniform.append(
                    median_seconds(
                        lambda: swap_uniform(ids, p, candidates, positions, generator), 1, warmup=1, calls=calls
                    )
                )
                graph_times.append(
                    median_seconds(lambda: swap_graph(ids, p, graph, generator), 1, warmup=1, calls=calls)
                )
            results[f"{rows}x{cols}"] = {
                "sse-se": ids.numel() / statistics.median(uniform) / 1e6,
                "sse-graph": ids.numel() / statistics.median(graph_times) / 1e6,
            }
        return results
    finally:
        torch.set_num_threads(threads)


def throughput_table(results: dict[str, dict[str, float]]) -> list[str]:
    """The throughput as markdown table lines: per batch shape, SSE-SE, SSE-Graph and their ratio."""
    lines = ["| batch | SSE-SE (M tokens/s, 1 thread) | SSE-Graph (M tokens/s) | Graph / SE |", "|---|---|---|---|"]
    for shape, rates in results.items():
        ratio = rates["sse-graph"] / rates["sse-se"]
        lines.append(f"| {shape} | {rates['sse-se']:.1f} | {rates['sse-graph']:.1f} | {ratio:.2f} |")
    return lines
