"""The over-fitting study's pre-registered rules as functions of its records: the epoch kept, the grid setting
chosen, the validity gates and the decision rule. The worker and the report both apply them from here, so the
runs and the page cannot disagree on a rule."""

from __future__ import annotations

import math
import statistics

import numpy as np

from recipes.evidence import overfit_plan as plan
from recipes.evidence.calibration import fit_temperature, nll, softmax
from recipes.evidence.holm import holm, paired_p
from recipes.evidence.paired import mean_interval


def select_epoch(choice_scores: list[dict[str, float]]) -> int:
    """The 0-based epoch kept: best choice accuracy; ties: lower choice NLL, then the earlier epoch."""
    return max(range(len(choice_scores)), key=lambda e: (choice_scores[e]["accuracy"], -choice_scores[e]["nll"], -e))


def kept_choice(record: dict) -> dict[str, float]:
    """The choice-split scores of a record's kept epoch."""
    return record["choice_scores"][record["kept_epoch"] - 1]


def grid_choice(records: dict[str, list[dict]]) -> str:
    """The grid setting with the best mean kept-epoch choice accuracy over the tuning seeds (ties: lower mean
    choice NLL, then name order). `records`: arm -> its tuning seeds' records."""

    def key(arm: str) -> tuple[float, float]:
        kept = [kept_choice(record) for record in records[arm]]
        return statistics.fmean(s["accuracy"] for s in kept), -statistics.fmean(s["nll"] for s in kept)

    return max(sorted(records, reverse=True), key=key)


def margins_logits(margins: list[float]) -> np.ndarray:
    """Two-class logits (0, margin) from a record's margins: softmax and temperature need nothing else."""
    margins = np.asarray(margins, dtype=np.float64)
    return np.stack([np.zeros_like(margins), margins], axis=1)


def scaled_test_nll(record: dict, choice_labels: list[int], test_labels: list[int]) -> tuple[float, float]:
    """(test NLL after temperature scaling, the temperature): T fitted on the kept epoch's choice margins."""
    temperature = fit_temperature(margins_logits(record["choice_margins"]), np.asarray(choice_labels))
    probs = softmax(margins_logits(record["test_margins"]), temperature)
    return nll(probs, np.asarray(test_labels)), temperature


def test_accuracy(record: dict, test_labels: list[int]) -> float:
    """Accuracy of the kept epoch's test predictions (margin > 0 is class 1; a margin of 0 is class 0, as argmax)."""
    predictions = (np.asarray(record["test_margins"]) > 0).astype(int)
    return float((predictions == np.asarray(test_labels)).mean())


def gates(baseline: list[dict]) -> dict:
    """The validity gates on the baseline's final-seed records: each figure, its threshold and whether it passes."""
    kept = [kept_choice(record) for record in baseline]
    accuracy = statistics.fmean(s["accuracy"] for s in kept)
    kept_nll = statistics.fmean(s["nll"] for s in kept)
    train_loss = statistics.fmean(record["epoch_train_loss"][-1] for record in baseline)
    rises = [
        record["choice_scores"][-1]["nll"] - min(s["nll"] for s in record["choice_scores"]) for record in baseline
    ]
    overfit_seeds = sum(rise >= plan.GATE_OVERFIT_NATS for rise in rises)
    learns = accuracy >= plan.GATE_ACCURACY and kept_nll < plan.GATE_NLL
    overfits = train_loss < plan.GATE_TRAIN_LOSS and overfit_seeds >= plan.GATE_OVERFIT_SEEDS
    return {
        "seeds": len(baseline),
        "choice_accuracy": accuracy,
        "choice_nll": kept_nll,
        "final_train_loss": train_loss,
        "nll_rise": rises,
        "overfit_seeds": overfit_seeds,
        "learns": learns,
        "overfits": overfits,
        "valid": learns and overfits and len(baseline) == len(plan.FINAL_SEEDS),
    }


def endpoint(diffs: list[float], higher_is_better: bool) -> dict:
    """Mean paired difference, its 95% t interval, the raw two-sided paired-t p, and the seeds SSE is ahead on."""
    mean, low, high = mean_interval(diffs)
    ahead = sum(d > 0 if higher_is_better else d < 0 for d in diffs)
    return {"mean": mean, "low": low, "high": high, "p": paired_p(diffs), "ahead": ahead}


def decision(accuracy_diffs: list[float], nll_diffs: list[float]) -> dict:
    """The pre-registered verdict from the paired differences SSE minus baseline: test accuracy in points and
    temperature-scaled test NLL in nats, Holm-adjusted over these two endpoints."""
    accuracy, scaled = endpoint(accuracy_diffs, True), endpoint(nll_diffs, False)
    accuracy["holm"], scaled["holm"] = holm([accuracy["p"], scaled["p"]])
    confirmed = (accuracy["low"] > 0 and accuracy["holm"] < plan.ALPHA) or (
        scaled["mean"] < 0 and scaled["holm"] < plan.ALPHA and accuracy["low"] > plan.CONFIRM_ACCURACY_FLOOR
    )
    refuted = accuracy["high"] < plan.REFUTE_ACCURACY_CEILING and scaled["low"] > -plan.REFUTE_NLL_GAIN
    verdict = "confirmed" if confirmed else "refuted" if refuted else "inconclusive"
    if any(math.isnan(v) for v in (accuracy["low"], scaled["low"])):
        verdict = "inconclusive"
    return {"accuracy": accuracy, "scaled_nll": scaled, "verdict": verdict}
