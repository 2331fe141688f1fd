"""Shared test setup: offline Hub, deterministic seeds, a tiny real tokenizer."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("WANDB_DISABLED", "true")

import pytest  # noqa: E402
import torch  # noqa: E402

from tiny_models import tiny_tokenizer  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    """A real WordPiece BertTokenizer over a 48-token vocabulary written to disk."""
    return tiny_tokenizer(tmp_path_factory.mktemp("tokenizer"))
