"""Shared pieces of the SSE-Graph tests: a small weighted graph, a tokenizer over a few words, helpers."""

from __future__ import annotations

import pytest
import torch
from transformers import BertTokenizer

from sse_hf.graph import SSEGraph

# Token 1 has three weighted neighbours, 2 and 5 have one or two, 0, 3, 4, 6..9 have none.
ADJACENCY = {1: {2: 1.0, 3: 2.0, 4: 5.0}, 2: {1: 1.0}, 5: {6: 1.0, 7: 3.0}}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "good", "great", "fine", "bad", "poor", "ok"]


@pytest.fixture(name="graph")
def graph_fixture() -> SSEGraph:
    return SSEGraph.from_dict(ADJACENCY, vocab_size=10)


@pytest.fixture(name="tokenizer")
def tokenizer_fixture(tmp_path) -> BertTokenizer:
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
