"""The recipes' GLUE metrics served through `evaluate` (recipes/metrics/glue_local): same keys and values as the
local functions for every task, `evaluate.combine` on it, loading offline from an empty cache, clear errors."""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import subprocess
import sys

import evaluate
import numpy as np
import pytest

from recipe_helpers import RECIPES
from recipes import run_glue
from recipes.kit import glue_metrics
from recipes.kit.glue_tasks import TASKS

CONFIGS = {
    **{name: spec.is_regression for name, spec in TASKS.items()},
    "regression": True,
    "binary": False,
    "multiclass": False,
}


def load(config_name: str):
    return evaluate.load(str(glue_metrics.GLUE_LOCAL), config_name=config_name, keep_in_memory=True)


def predictions_and_labels(is_regression: bool, num_labels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if is_regression:
        labels = rng.uniform(0, 5, 40)
        return labels + rng.normal(0, 1, 40), labels
    labels = rng.integers(0, num_labels, 40)
    return np.where(rng.random(40) < 0.7, labels, rng.integers(0, num_labels, 40)), labels


def same(a: dict, b: dict) -> bool:
    """Equal keys and values, nan equal to nan (constant inputs have no correlation)."""
    return a.keys() == b.keys() and all(x == b[k] or (math.isnan(x) and math.isnan(b[k])) for k, x in a.items())


@pytest.mark.parametrize("config_name", list(CONFIGS))
def test_evaluate_module_gives_the_local_metrics_keys_and_values(config_name):
    is_regression = CONFIGS[config_name]
    spec = TASKS.get(config_name)
    num_labels = spec.num_labels if spec else {"regression": 1, "binary": 2, "multiclass": 3}[config_name]
    names = spec.metrics if spec else glue_metrics.default_metrics(is_regression, num_labels)
    assert glue_metrics.metric_config(spec and spec.name, is_regression, num_labels) == config_name
    metric = load(config_name)
    for seed in range(3):
        predictions, labels = predictions_and_labels(is_regression, num_labels, seed)
        local = glue_metrics.compute_metrics(names, predictions, labels)
        served = metric.compute(predictions=predictions, references=labels)
        assert same(served, local), (config_name, served, local)
    constant = np.ones(6) if is_regression else np.zeros(6, dtype=int)  # nan correlations and zero F1, as locally
    local = glue_metrics.compute_metrics(names, constant, np.arange(6) % 2)
    assert same(metric.compute(predictions=constant, references=np.arange(6) % 2), local)


def test_trainer_metric_function_goes_through_the_evaluate_module():
    """run_glue's compute_metrics: logits -> ids/scores -> the evaluate module, the local values."""
    for config_name, is_regression in [("mrpc", False), ("stsb", True), ("mnli", False)]:
        spec = TASKS[config_name]
        predictions, labels = predictions_and_labels(is_regression, spec.num_labels, 0)
        logits = predictions[:, None] if is_regression else np.eye(spec.num_labels)[predictions]
        prediction = type("EvalPrediction", (), {"predictions": logits, "label_ids": labels})()
        scores = glue_metrics.metric_function(load(config_name), is_regression)(prediction)
        assert same(scores, glue_metrics.compute_metrics(spec.metrics, predictions, labels))
    assert run_glue.evaluate is evaluate and "GLUE_LOCAL" in vars(run_glue)  # the recipe imports and uses it


def test_evaluate_combine_works_on_it():
    combined = evaluate.combine([load("cola"), load("mrpc")])
    predictions, labels = np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0])
    scores = combined.compute(predictions=predictions, references=labels)
    assert scores == {
        **glue_metrics.compute_metrics(("matthews_correlation",), predictions, labels),
        **glue_metrics.compute_metrics(("f1", "accuracy"), predictions, labels),
    }


def test_unknown_config_name_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Unknown config_name 'sts-b'.*Pass one of: cola, sst2"):
        load("sts-b")


def test_loads_offline_from_an_empty_cache(tmp_path):
    """A fresh clone offline: nothing cached, no network; the module is copied from the project and computes."""
    code = (
        "import evaluate; from recipes.kit.glue_metrics import GLUE_LOCAL; "
        "m = evaluate.load(str(GLUE_LOCAL), config_name='rte'); "
        "print(m.compute(predictions=[0, 1], references=[0, 0]))"
    )
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_EVALUATE_OFFLINE": "1",
    }
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=RECIPES.parent, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'accuracy': 0.5}"
    assert (tmp_path / "hf").exists()


def test_the_readme_example_prints_what_it_shows():
    text = (RECIPES.parent / "README.md").read_text()
    block = re.search(r"```python\n((?:#[^\n]*\n)*import evaluate\n.*?)```", text, re.S).group(1)
    shown = re.search(r"^# prints (.*)$", block, re.M).group(1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(block, {})
    assert printed.getvalue() == shown + "\n"
