"""The fixed IMDB split the IMDB studies share: its files in the study folder, the fine-tuning settings, and a
run's test accuracy on it."""

from __future__ import annotations

import os

import numpy as np

from recipes.evidence.records import OUTPUTS
from recipes.evidence.run_flags import RUN_FLAGS

STUDY_DIR = os.path.join(OUTPUTS, "study")  # scratch: the split, models and full run folders (git-ignored)

# Sentiment fine-tuning, fixed before the fine-tuning study's runs on training loss alone (a seed-0 pilot, no
# dev or test): at lr 1e-4 the baseline fits its 250 reviews (training loss 0.06 by epoch 4), the regime where
# overfitting can bite. The continued pre-training study fine-tunes its models with the same settings.
FINETUNE_ARGS = [
    "--max_seq_length",
    "128",
    "--per_device_train_batch_size",
    "16",
    "--learning_rate",
    "1e-4",
    "--num_train_epochs",
    "6",
    "--warmup_steps",
    "0.1",
    "--weight_decay",
    "0.01",
    *RUN_FLAGS,
]


def split(data: str, study_dir: str) -> dict[str, int]:
    """Write test (800), dev (200), train-1000 and train-250 CSVs from a seeded permutation."""
    import pandas as pd

    frame = pd.read_csv(data)
    order = np.random.default_rng(0).permutation(len(frame))
    frame = frame.iloc[order].reset_index(drop=True)
    parts = {"test": frame[:800], "dev": frame[800:1000], "train-1000": frame[1000:2000]}
    parts["train-250"] = parts["train-1000"][:250]
    os.makedirs(study_dir, exist_ok=True)
    for name, part in parts.items():
        part[["text", "label"]].to_csv(os.path.join(study_dir, f"{name}.csv"), index=False)
    counts = {name: len(part) for name, part in parts.items()}
    positives = {name: int(part["label"].sum()) for name, part in parts.items()}
    print(f"split: {counts}, positives: {positives}")
    return counts


def test_accuracy(run_dir: str, test_csv: str) -> float:
    """Accuracy of the run's test predictions (written by run_glue --do_predict) against the test labels."""
    import pandas as pd

    [name] = [f for f in os.listdir(run_dir) if f.startswith("predict_results_")]
    predictions = pd.read_csv(os.path.join(run_dir, name), sep="\t")["prediction"].astype(int).to_numpy()
    labels = pd.read_csv(test_csv)["label"].to_numpy()
    return float((predictions == labels).mean())
