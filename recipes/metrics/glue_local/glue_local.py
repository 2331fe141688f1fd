"""The recipes' GLUE metrics as an `evaluate` module, loaded by path so that it works offline.

`evaluate.load("glue", task)` fetches its script from the Hub; `evaluate.load(<this folder>, config_name=task)` gives
the same keys and values (recipes/kit/glue_metrics.py computes them) with no network. Config names: the GLUE tasks
and IMDB, or `regression`, `binary`, `multiclass` for local data without a task.
"""

import datasets
import evaluate

from recipes.kit.glue_metrics import compute_metrics, default_metrics
from recipes.kit.glue_tasks import TASKS

_DESCRIPTION = "GLUE metrics (and IMDB accuracy) computed locally with numpy, scipy and scikit-learn."
_KWARGS_DESCRIPTION = """
Args:
    predictions: class ids, or scores for `stsb` and `regression`.
    references: gold class ids, or gold scores.
Returns: the task's metrics, plus `combined_score` (their mean) where there are two, as upstream run_glue reports.
"""
LOCAL = {
    "regression": default_metrics(True, 1),
    "binary": default_metrics(False, 2),
    "multiclass": default_metrics(False, 3),
}
METRIC_NAMES = {**{name: spec.metrics for name, spec in TASKS.items()}, **LOCAL}
REGRESSION = {name for name, spec in TASKS.items() if spec.is_regression} | {"regression"}


class GlueLocal(evaluate.Metric):
    """One config per task: its metric names, and int64 ids or float64 scores (no rounding through float32)."""

    def _info(self):
        if self.config_name not in METRIC_NAMES:
            raise ValueError(
                f"Unknown config_name {self.config_name!r} for the glue_local metric. "
                f"Pass one of: {', '.join(METRIC_NAMES)}."
            )
        dtype = "float64" if self.config_name in REGRESSION else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value(dtype), "references": datasets.Value(dtype)}),
        )

    def _compute(self, predictions, references):
        return compute_metrics(METRIC_NAMES[self.config_name], predictions, references)
