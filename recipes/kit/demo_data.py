"""The synthetic sentiment data shipped in `recipes/data/` (made by `make_sentiment_data.py`): its files and sentences.

The demo and the recipe benchmark train on it; it needs no download.
"""

from __future__ import annotations

import csv
import os

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
TRAIN_FILE = os.path.join(DATA_DIR, "sentiment_train.csv")
VALIDATION_FILE = os.path.join(DATA_DIR, "sentiment_validation.csv")


def training_sentences() -> list[str]:
    """The `sentence` column of the training file (to train a tokenizer on, or to batch)."""
    with open(TRAIN_FILE, encoding="utf-8") as handle:
        return [row["sentence"] for row in csv.DictReader(handle)]
