"""The suite's shared fixtures: offline Hub, a seed per test, tiny real tokenizers, a small graph, a tiny BERT."""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("WANDB_DISABLED", "true")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import BertTokenizer  # noqa: E402

from graph_helpers import ADJACENCY, VOCAB  # noqa: E402
from sse_hf.graph import SSEGraph  # noqa: E402
from tiny_models import save_tiny_bert, tiny_tokenizer  # noqa: E402

HERE = Path(__file__).resolve().parent

# Files that are end-to-end runs as a whole: marked `slow`, which `make test-fast` (-m "not slow") leaves out, as it
# leaves out tests/recipes/ (its conftest) and the single tests marked `slow` where they are.
SLOW_FILES = {
    "test_compile.py": "torch.compile of every family",
    "test_examples.py": "the docs' scripts train with Trainer and search p with optuna",
    "test_search.py": "Trainer.hyperparameter_search over p with optuna",
    "test_sentence_transformers.py": "sentence-transformers' and SetFit's trainers",
    "test_trl.py": "TRL's SFTTrainer",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.parent == HERE and item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    """A real WordPiece BertTokenizer over a 48-token vocabulary written to disk."""
    return tiny_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture
def graph() -> SSEGraph:
    """The SSE-Graph of `graph_helpers.ADJACENCY` over a 10-token table."""
    return SSEGraph.from_dict(ADJACENCY, vocab_size=10)


@pytest.fixture
def graph_tokenizer(tmp_path) -> BertTokenizer:
    """A BertTokenizer over the 12 words of `graph_helpers.VOCAB`, for graphs given as token strings."""
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return BertTokenizer(str(path))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A tiny random-init BERT classifier and its 48-token tokenizer, saved to disk (tests/recipes/ builds its own)."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
