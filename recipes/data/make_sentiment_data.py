"""Write the synthetic sentiment CSVs that the demo trains on (deterministic: same files every time).

The sentences are built from templates: a subject, an opinion word, sometimes a negation ("was not good" is
negative) or a contrast ("..., but the ending was dull" takes the second clause's sentiment). They are made up,
not real reviews; they exist so that the recipes run end to end with no download.
"""

from __future__ import annotations

import csv
import os
import random

SUBJECTS = [
    "the movie",
    "this film",
    "the plot",
    "the acting",
    "the soundtrack",
    "the ending",
    "the story",
    "the cast",
    "the script",
    "the dialogue",
    "the camera work",
    "the second half",
    "the lead actor",
    "the villain",
    "the sequel",
]
POSITIVE = [
    "wonderful",
    "great",
    "moving",
    "brilliant",
    "charming",
    "delightful",
    "superb",
    "gripping",
    "funny",
    "beautiful",
    "clever",
    "fresh",
    "touching",
    "excellent",
    "memorable",
]
NEGATIVE = [
    "boring",
    "dull",
    "awful",
    "terrible",
    "clumsy",
    "tedious",
    "predictable",
    "weak",
    "painful",
    "bland",
    "silly",
    "confusing",
    "flat",
    "forgettable",
    "messy",
]
ADVERBS = ["really", "truly", "quite", "very", "rather", "surprisingly", "mostly"]
NOUNS = ["film", "movie", "story", "performance", "experience", "script"]


def sentence(rng: random.Random) -> tuple[str, str]:
    """One (sentence, label) pair; label is 'positive' or 'negative'."""
    positive = rng.random() < 0.5
    word = rng.choice(POSITIVE if positive else NEGATIVE)
    subject = rng.choice(SUBJECTS)
    kind = rng.randrange(6)
    if kind == 0:
        text = f"{subject} was {word}."
    elif kind == 1:
        text = f"{subject} is {rng.choice(ADVERBS)} {word}."
    elif kind == 2:
        text = f"i found {subject} {word}."
    elif kind == 3:  # negation flips the label
        text = f"{subject} was not {word} at all."
        positive = not positive
    elif kind == 4:  # contrast: the clause after "but" decides
        other = rng.choice(NEGATIVE if positive else POSITIVE)
        text = f"{subject} was {other}, but {rng.choice(SUBJECTS)} was {word}."
    else:
        text = f"what a {word} {rng.choice(NOUNS)}!"
    return text, "positive" if positive else "negative"


def write(path: str, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sentence", "label"])
        writer.writerows(rows)


def main(
    directory: str = os.path.dirname(os.path.abspath(__file__)), n_train: int = 480, n_validation: int = 160
) -> None:
    rng = random.Random(20190529)  # the SSE paper's arXiv date
    seen: set[str] = set()
    rows: list[tuple[str, str]] = []
    while len(rows) < n_train + n_validation:
        text, label = sentence(rng)
        if text not in seen:
            seen.add(text)
            rows.append((text, label))
    write(os.path.join(directory, "sentiment_train.csv"), rows[:n_train])
    write(os.path.join(directory, "sentiment_validation.csv"), rows[n_train:])


if __name__ == "__main__":
    main()
