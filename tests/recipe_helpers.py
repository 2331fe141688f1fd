"""Data of the recipe tests: where the recipes are, made-up sentiment rows and corpus, local files, fast flags."""

from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "recipes"

POSITIVE = ["good", "great", "fun", "lovely", "superb", "charming"]
NEGATIVE = ["bad", "dull", "awful", "boring", "weak", "clumsy"]
SUBJECTS = ["the movie", "the plot", "the acting", "this film", "the story", "the ending"]


def sentiment_rows(n: int, seed: int = 0) -> list[dict]:
    """Short labelled sentences ('positive' / 'negative'), made up for the tests."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        positive = rng.random() < 0.5
        word = rng.choice(POSITIVE if positive else NEGATIVE)
        rows.append(
            {"sentence": f"{rng.choice(SUBJECTS)} was {word}.", "label": "positive" if positive else "negative"}
        )
    return rows


def write_csv(path: Path, rows: list[dict]) -> str:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def write_jsonl(path: Path, rows: list[dict]) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return str(path)


def corpus_texts() -> list[str]:
    """Text to train the tiny tokenizer on: every word the test data uses, and some GLUE-ish filler."""
    words = (
        POSITIVE
        + NEGATIVE
        + SUBJECTS
        + [
            "is",
            "not",
            "a",
            "an",
            "what",
            "who",
            "why",
            "does",
            "it",
            "man",
            "woman",
            "dog",
            "cat",
            "runs",
            "sat",
            "on",
            "mat",
            "park",
            "question",
            "answer",
            "same",
            "different",
            "today",
            "yesterday",
            "because",
        ]
    )
    rng = random.Random(1)
    return [" ".join(rng.choice(words) for _ in range(8)) for _ in range(300)]


def fast_args(output_dir, *extra: str, steps: int = 4) -> list[str]:
    """Flags that keep a recipe run to a few seconds on 2 CPU cores."""
    return [
        "--output_dir",
        str(output_dir),
        "--max_steps",
        str(steps),
        "--per_device_train_batch_size",
        "8",
        "--per_device_eval_batch_size",
        "8",
        "--learning_rate",
        "1e-3",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--log_level",
        "warning",
        "--dataloader_pin_memory",
        "False",
        "--max_seq_length",
        "32",
        *extra,
    ]


def read_results(output_dir) -> dict:
    with open(os.path.join(output_dir, "all_results.json"), encoding="utf-8") as handle:
        return json.load(handle)
