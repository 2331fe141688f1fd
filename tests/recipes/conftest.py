"""The recipe tests' fixtures and marks: made-up sentiment files on disk; every test here runs a recipe, so is slow."""

from pathlib import Path

import pytest

from recipe_helpers import corpus_texts, sentiment_rows, write_csv

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """Mark every test of this folder `slow` (the hook sees the whole session's items, hence the path check)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def sentiment_files(tmp_path_factory) -> dict[str, str]:
    """train.csv (64 rows), validation.csv (24 rows) and test.csv (16 rows, no label) of made-up sentiment."""
    directory = tmp_path_factory.mktemp("sentiment")
    test_rows = [{"sentence": row["sentence"]} for row in sentiment_rows(16, seed=3)]
    return {
        "train": write_csv(directory / "train.csv", sentiment_rows(64, seed=1)),
        "validation": write_csv(directory / "validation.csv", sentiment_rows(24, seed=2)),
        "test": write_csv(directory / "test.csv", test_rows),
    }


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A random-init BERT (hidden 32, 2 layers) with a WordPiece tokenizer of a few hundred pieces learned from the
    recipes' corpus, saved to disk: what the recipes load with --model_name_or_path."""
    from recipes.kit.tiny_bert import build_tiny_bert

    directory = tmp_path_factory.mktemp("tiny-bert-recipes")
    return build_tiny_bert(
        str(directory),
        corpus_texts(),
        vocab_size=200,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=64,
    )
