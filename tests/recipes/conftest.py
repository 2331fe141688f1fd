"""The recipe tests' fixtures and marks: made-up sentiment files on disk; every test here runs a recipe, so is slow."""

from pathlib import Path

import pytest

from recipe_helpers import sentiment_rows, write_csv

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
