"""GLUE metrics computed locally with numpy, scipy and scikit-learn, so that evaluation works offline.

`evaluate.load("glue", task)` fetches its script from the Hub; these give the same numbers without it. The recipes
serve them through `evaluate` from the project's own module, `evaluate.load(str(GLUE_LOCAL), config_name=...)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

# The `evaluate` module (an `evaluate.Metric` script) that serves these metrics, one config per task.
GLUE_LOCAL = Path(__file__).resolve().parents[1] / "metrics" / "glue_local"


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float((predictions == labels).mean())


def f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Binary F1 of the positive class (label 1), as GLUE reports it for MRPC and QQP."""
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, average="binary", pos_label=1, zero_division=0.0))


def macro_f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, average="macro", zero_division=0.0))


def matthews_correlation(predictions: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(labels, predictions))


def _correlation(function, predictions: np.ndarray, labels: np.ndarray) -> float:
    # Constant inputs have no correlation: report nan rather than warn.
    if len(predictions) < 2 or np.ptp(predictions) == 0 or np.ptp(labels) == 0:
        return math.nan
    return float(function(predictions, labels)[0])


def pearson(predictions: np.ndarray, labels: np.ndarray) -> float:
    from scipy.stats import pearsonr

    return _correlation(pearsonr, predictions, labels)


def spearmanr(predictions: np.ndarray, labels: np.ndarray) -> float:
    from scipy.stats import spearmanr as scipy_spearmanr

    return _correlation(scipy_spearmanr, predictions, labels)


def mse(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(((predictions - labels) ** 2).mean())


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "macro_f1": macro_f1,
    "matthews_correlation": matthews_correlation,
    "pearson": pearson,
    "spearmanr": spearmanr,
    "mse": mse,
}


def default_metrics(is_regression: bool, num_labels: int) -> tuple[str, ...]:
    """Metrics for local data without a GLUE task: correlations and MSE for regression, accuracy (and F1) else."""
    if is_regression:
        return ("pearson", "spearmanr", "mse")
    return ("accuracy", "f1") if num_labels == 2 else ("accuracy", "macro_f1")


def metric_config(task: str | None, is_regression: bool, num_labels: int) -> str:
    """The GLUE_LOCAL config: the task's name, else `regression`, `binary` or `multiclass` (see default_metrics)."""
    if task:
        return task
    return "regression" if is_regression else "binary" if num_labels == 2 else "multiclass"


def predictions_from_logits(logits: np.ndarray | tuple, is_regression: bool) -> np.ndarray:
    """Class ids (argmax) or regression scores from a model's raw outputs."""
    if isinstance(logits, tuple):
        logits = logits[0]
    logits = np.asarray(logits)
    return np.squeeze(logits, axis=-1) if is_regression else np.argmax(logits, axis=-1)


def compute_metrics(names: Sequence[str], predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The named metrics, plus `combined_score` (their mean, as upstream run_glue) when there are several."""
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"Unknown metric(s) {unknown}. Known: {', '.join(METRICS)}.")
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape:
        raise ValueError(f"{predictions.shape[0]} predictions for {labels.shape[0]} labels.")
    results = {name: METRICS[name](predictions, labels) for name in names}
    if len(results) > 1 and "mse" not in results:
        results["combined_score"] = float(np.mean(list(results.values())))
    return results


def metric_function(metric, is_regression: bool) -> Callable:
    """A `compute_metrics` for `Trainer` from an `evaluate` metric: EvalPrediction -> {metric: value}."""

    def compute(eval_prediction) -> dict[str, float]:
        predictions = predictions_from_logits(eval_prediction.predictions, is_regression)
        return metric.compute(predictions=predictions, references=np.asarray(eval_prediction.label_ids))

    return compute
