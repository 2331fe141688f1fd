"""The tuned study's records as the report reads them: every run's dev figures at its kept epoch (and after
temperature scaling fitted on its carved split), the trivial references, and each family's choice on the carved
split."""

from __future__ import annotations

import json
import os

import numpy as np

from recipes.evidence import tuned_plan as plan
from recipes.evidence.calibration import calibration_metrics, fit_temperature, softmax
from recipes.evidence.tuned_scores import carved_choice

REGIMES = (*plan.TASKS, *plan.CURVE_REGIMES)


def write_labels(glue_dir: str, records: str) -> None:
    """Per task, `labels.json`: the carved and dev labels (as the study indexes them) and the class counts of
    the training rows, so the report and anyone else can recompute every figure from the records."""
    from recipes.evidence.study_tuned import read_task

    for task in plan.TASKS:
        pool, carved, dev, names = read_task(glue_dir, task)
        counts = [pool[1].count(i) for i in range(len(names))]
        os.makedirs(os.path.join(records, task), exist_ok=True)
        with open(os.path.join(records, task, "labels.json"), "w", encoding="utf-8") as handle:
            json.dump({"names": names, "train_counts": counts, "carved": carved[1], "dev": dev[1]}, handle)


def load(records: str) -> tuple[dict, dict]:
    """(task -> arm -> seed -> record, task -> labels) of every record present."""
    runs: dict[str, dict[str, dict[int, dict]]] = {}
    labels: dict[str, dict] = {}
    for task in REGIMES:
        folder = os.path.join(records, task)
        if not os.path.isdir(folder):
            continue
        label_path = os.path.join(records, plan.base_task(task), "labels.json")  # a curve regime shares its task's
        if os.path.isfile(label_path):
            with open(label_path, encoding="utf-8") as handle:
                labels[task] = json.load(handle)
        for arm in sorted(os.listdir(folder)):
            if not os.path.isdir(os.path.join(folder, arm)):
                continue
            for name in os.listdir(os.path.join(folder, arm)):
                if name.startswith("seed-") and name.endswith(".json"):
                    with open(os.path.join(folder, arm, name), encoding="utf-8") as handle:
                        record = json.load(handle)
                    runs.setdefault(task, {}).setdefault(arm, {})[record["seed"]] = record
    return runs, labels


def margins_to_logits(margins: list[float]) -> np.ndarray:
    return np.stack([np.zeros(len(margins)), np.asarray(margins, dtype=np.float64)], axis=1)


def run_metrics(record: dict, labels: dict, task: str) -> dict[str, float]:
    """A run's dev figures at its kept epoch, and its dev calibration after temperature scaling fitted on its
    carved split."""
    dev = record["epoch_scores"][record["kept_epoch"] - 1]["dev"]
    figures = {
        "primary": dev[plan.PRIMARY[plan.base_task(task)]],
        "accuracy": dev["accuracy"],
        "nll": dev["nll"],
        "ece": dev["ece"],
        "brier": dev["brier"],
        "epoch": record["kept_epoch"],
    }
    if labels:
        temperature = fit_temperature(margins_to_logits(record["carved_margins"]), np.array(labels["carved"]))
        scaled = calibration_metrics(
            softmax(margins_to_logits(record["dev_margins"]), temperature), np.array(labels["dev"])
        )
        figures.update(
            {"temperature": temperature, "ts_nll": scaled["nll"], "ts_ece": scaled["ece"], "ts_brier": scaled["brier"]}
        )
    return figures


def reference(labels: dict, task: str) -> dict[str, float]:
    """The trivial references on dev: always the training majority class (accuracy, F1, MCC 0), and the
    class-prior probabilities (cross-entropy, Brier, ECE)."""
    from recipes.kit.glue_metrics import f1

    counts = np.array(labels["train_counts"], dtype=np.float64)
    prior = counts / counts.sum()
    dev = np.array(labels["dev"])
    majority = int(prior.argmax())
    predictions = np.full(len(dev), majority)
    accuracy = float((dev == majority).mean())
    probs = np.tile(prior, (len(dev), 1))
    scores = {"accuracy": accuracy, "f1": f1(predictions, dev), "matthews_correlation": 0.0}
    scores["acc_and_f1"] = (scores["accuracy"] + scores["f1"]) / 2
    return {
        "primary": scores[plan.PRIMARY[plan.base_task(task)]],
        "majority_class": labels["names"][majority],
        **scores,
        **calibration_metrics(probs, dev),
    }


def chosen(runs: dict, task: str) -> dict[str, str]:
    """family -> its chosen arm (once its whole grid is recorded at the tuning seed): the baseline's learning
    rate first, then each regulariser's setting."""
    picks = {}
    task_runs = runs.get(task, {})

    def pick(arms: list[str]) -> str | None:
        seed_one = {arm: task_runs.get(arm, {}).get(plan.TUNING_SEED) for arm in arms}
        return carved_choice(seed_one, task) if all(seed_one.values()) else None

    base = pick(list(plan.BASELINE_ARMS))
    if base:
        picks["baseline"] = base
        for family, grid in plan.FAMILIES.items():
            best = pick(list(grid))
            if best:
                picks[family] = best
    return picks
