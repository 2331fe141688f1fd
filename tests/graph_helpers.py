"""Data and helpers of the SSE-Graph tests: a small weighted graph, the words of a tiny tokenizer, comparisons."""

from __future__ import annotations

import pytest
import torch

# Token 1 has three weighted neighbours, 2 and 5 have one or two, 0, 3, 4, 6..9 have none.
ADJACENCY = {1: {2: 1.0, 3: 2.0, 4: 5.0}, 2: {1: 1.0}, 5: {6: 1.0, 7: 3.0}}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "good", "great", "fine", "bad", "poor", "ok"]


def assert_same_graph(actual: dict, expected: dict) -> None:
    """`{token: {neighbour: probability}}` equal in keys and (approximately) in probabilities."""
    assert actual.keys() == expected.keys()
    for token, neighbours in expected.items():
        assert actual[token] == pytest.approx(neighbours), token


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def all_tokens(shape=(200, 500), vocab_size=10, seed=1) -> torch.Tensor:
    return torch.randint(0, vocab_size, shape, generator=generator(seed))
