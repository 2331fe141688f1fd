"""Scores of the tuned-baseline study: a split's task metrics and calibration from its logits, the epoch kept
(best carved-split score), and the setting chosen from a grid (best carved-split score at its kept epoch)."""

from __future__ import annotations

import numpy as np

from recipes.evidence import tuned_plan as plan
from recipes.evidence.calibration import calibration_metrics, softmax
from recipes.kit.glue_metrics import accuracy, f1, matthews_correlation


def split_scores(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, F1 (class 1), their mean, MCC, and ECE / Brier / NLL of one split's two-class logits."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    predictions = logits.argmax(axis=1)
    scores = {
        "accuracy": accuracy(predictions, labels),
        "f1": f1(predictions, labels),
        "matthews_correlation": matthews_correlation(predictions, labels),
    }
    scores["acc_and_f1"] = (scores["accuracy"] + scores["f1"]) / 2
    scores.update(calibration_metrics(softmax(logits), labels))
    return {key: round(value, 6) for key, value in scores.items()}


def epoch_scores(epoch_logits: list[dict], labels: dict[str, list[int]], task: str) -> list[dict[str, dict]]:
    """Per epoch, per split: `split_scores`."""
    return [{name: split_scores(epoch[name], labels[name]) for name in labels} for epoch in epoch_logits]


def _key(carved: dict[str, float], task: str) -> tuple[float, float]:
    # higher task score first; on a tie, lower log loss
    return (carved[plan.SELECT[plan.base_task(task)]], -carved["nll"])


def select_epoch(scores: list[dict[str, dict]], task: str) -> int:
    """The 0-based epoch with the best carved-split score (ties: lower carved NLL, then the earlier epoch)."""
    return max(range(len(scores)), key=lambda e: (_key(scores[e]["carved"], task), -e))


def carved_choice(records: dict[str, dict], task: str) -> str:
    """The arm whose kept epoch scores best on the carved split (ties: lower carved NLL, then name order)."""

    def key(arm: str):
        record = records[arm]
        return _key(record["epoch_scores"][record["kept_epoch"] - 1]["carved"], task)

    return max(sorted(records), key=key)
