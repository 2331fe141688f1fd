"""Choosing the SSE settings of a recipe run: `Trainer.hyperparameter_search` over a grid of `--sse_*` values,
scored on a split carved reproducibly from the training data (GLUE dev is never used).

    python recipes/run_glue.py ... --search_sse '{"p": [0, 0.05, 0.1]}' --search_held_out 0.2

prints each candidate's score and the chosen setting, and writes them to `<output_dir>/sse_search.json`.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from transformers import Trainer, TrainerCallback

from sse_hf import SSECallback, SSEConfig, best_sse_config
from sse_hf.config import config_field_types

logger = logging.getLogger(__name__)

SEARCH_FILE = "sse_search.json"


@dataclass
class SearchArguments:
    """Search the SSE settings on a held-out part of the training data instead of training and evaluating."""

    search_sse: str | None = field(
        default=None,
        metadata={
            "help": "JSON object of SSEConfig fields to lists of candidate values, e.g. '{\"p\": [0, 0.05, 0.1]}': "
            "train once per combination (other fields from --sse_*) on the training data minus a held-out part, "
            f"score each on that part, print and write the scores and the best setting to {SEARCH_FILE}. "
            "Trains no final model and never reads the validation data: run the chosen setting as usual."
        },
    )
    search_held_out: float = field(
        default=0.2,
        metadata={"help": "--search_sse: the fraction of the training data held out for scoring (drawn with --seed)."},
    )
    search_backend: str = field(
        default="optuna", metadata={"help": "--search_sse: Trainer.hyperparameter_search's backend, optuna or ray."}
    )

    def __post_init__(self) -> None:
        if self.search_sse is not None:
            self.grid = parse_grid(self.search_sse)
        if not 0.0 < self.search_held_out < 1.0:
            raise ValueError(f"--search_held_out must be a fraction in (0, 1), got {self.search_held_out}.")
        if self.search_backend not in ("optuna", "ray"):
            raise ValueError(f"--search_backend must be optuna or ray, got {self.search_backend!r}.")


def parse_grid(text: str) -> dict[str, list]:
    """`--search_sse` JSON text as {SSEConfig field: candidate values}, each value checked now."""
    try:
        grid = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--search_sse must be JSON text such as '{{\"p\": [0, 0.05, 0.1]}}' ({error}).") from error
    fields = config_field_types()
    if not isinstance(grid, dict) or not grid:
        raise ValueError(
            f'--search_sse must map SSEConfig fields to lists of values, e.g. {{"p": [0, 0.1]}}; got {grid!r}.'
        )
    for name, values in grid.items():
        if name not in fields:
            raise ValueError(
                f"--search_sse names {name!r}, which is no SSEConfig field. Choose from {sorted(fields)}."
            )
        if not isinstance(values, list) or not values:
            raise ValueError(f"--search_sse: {name!r} needs a non-empty list of candidate values, got {values!r}.")
        for value in values:
            try:
                SSEConfig().replace(**{name: value})
            except (TypeError, ValueError) as error:
                raise ValueError(f"--search_sse: {name}={value!r} is not a valid value: {error}") from error
    return grid


def carve_split(dataset, fraction: float, seed: int):
    """(training part, held-out part) of `dataset`, the same every time for the same seed."""
    if len(dataset) < 2 or round(len(dataset) * fraction) < 1:
        raise ValueError(
            f"--search_held_out {fraction} of {len(dataset)} training rows holds out nothing: give more training data "
            "or a larger fraction."
        )
    parts = dataset.train_test_split(test_size=fraction, seed=seed, shuffle=True)
    return parts["train"], parts["test"]


class _Scores(TrainerCallback):
    """Each trial's parameters and held-out score, as Trainer evaluates it at the end of the trial (optuna)."""

    def __init__(self, metric: str):
        self.metric, self.trials = metric, []

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if state.trial_params is not None and metrics and self.metric in metrics:
            self.trials.append({**state.trial_params, self.metric: metrics[self.metric]})


def search_sse(
    trainer_kwargs: dict[str, Any],
    search_args: SearchArguments,
    base: SSEConfig,
    tokenizer,
    metric: str,
    output_dir: str,
) -> dict[str, Any]:
    """Run the grid with `Trainer.hyperparameter_search` (maximising `metric` on the held-out part); print, write
    and return what each candidate scored and the chosen setting."""
    grid = {f"sse_{name}": values for name, values in search_args.grid.items()}
    scores = _Scores(metric)
    callback = SSECallback(base, tokenizer=tokenizer)
    trainer = Trainer(**trainer_kwargs, callbacks=[callback, scores])
    objective = lambda metrics: metrics[metric]  # noqa: E731
    if search_args.search_backend == "optuna":
        import optuna

        best = trainer.hyperparameter_search(
            hp_space=lambda trial: {name: trial.suggest_categorical(name, values) for name, values in grid.items()},
            compute_objective=objective,
            n_trials=len(list(itertools.product(*grid.values()))),
            direction="maximize",
            backend="optuna",
            sampler=optuna.samplers.GridSampler(grid, seed=trainer.args.seed),
        )
        trials = scores.trials
    else:
        from ray import tune

        best = trainer.hyperparameter_search(
            hp_space=lambda _: {name: tune.grid_search(values) for name, values in grid.items()},
            compute_objective=objective,
            n_trials=1,
            direction="maximize",
            backend="ray",
            resources_per_trial={"cpu": 1},
            storage_path=os.path.abspath(os.path.join(output_dir, "ray")),
        )
        trials = [
            {**{k: t.config[k] for k in grid}, metric: t.last_result["objective"]} for t in best.run_summary.trials
        ]
    chosen = best_sse_config(best, base)
    record = {
        "metric": metric,
        "held_out_fraction": search_args.search_held_out,
        "seed": trainer.args.seed,
        "backend": search_args.search_backend,
        "candidates": sorted(trials, key=lambda t: [t[k] for k in grid]),
        "chosen": {name: getattr(chosen, name[len("sse_") :]) for name in grid},
        "chosen_score": best.objective,
        "chosen_options": " ".join(f"--{name} {json.dumps(getattr(chosen, name[4:]))}" for name in grid),
    }
    for trial in record["candidates"]:
        print("  ".join(f"{k}={v}" for k, v in trial.items()))
    print(f"chosen: {record['chosen_options']} ({metric} {best.objective:.4f} on the held-out part)")
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, SEARCH_FILE), "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)
        handle.write("\n")
    return record
