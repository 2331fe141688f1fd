"""Choosing the SSE settings of a recipe run: `Trainer.hyperparameter_search` over a grid of `--sse_*` values,
scored on a split carved reproducibly from the training data (GLUE dev is never used).

    python recipes/run_glue.py ... --search_sse '{"p": [0, 0.05, 0.1]}' --search_held_out 0.2

prints each candidate's score and the chosen setting, and writes them to `<output_dir>/sse_search.json`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import os
import shlex
import typing
import warnings
from dataclasses import dataclass, field
from typing import Any

from transformers import Trainer, TrainerCallback

from sse_hf import SSECallback, SSEConfig
from sse_hf.config import config_field_types, field_from_text, idle_fields
from sse_hf.search import PREFIX, check_no_repeats, check_space, choice_value

logger = logging.getLogger(__name__)

SEARCH_FILE = "sse_search.json"
# Metrics that need at least three held-out rows with different labels (two points always correlate +-1).
CORRELATIONS = ("pearson", "spearmanr")
TIE_RULE = (
    "a tie goes to the least SSE: the smallest p (p = 0 first), then decoder_p, label_p and table_p, then the "
    "order of --search_sse"
)


@dataclass
class SearchArguments:
    """Search the SSE settings on a held-out part of the training data instead of training and evaluating."""

    _argument_group_name = "Stochastic Shared Embeddings (SSE) options"  # --help lists them with the --sse_* options

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
        if not 0.0 < self.search_held_out < 1.0:
            raise ValueError(f"--search_held_out must be a fraction in (0, 1), got {self.search_held_out}.")
        if self.search_backend not in ("optuna", "ray"):
            raise ValueError(f"--search_backend must be optuna or ray, got {self.search_backend!r}.")
        if self.search_sse is not None:
            self.grid = parse_grid(self.search_sse)
            return
        idle = [
            f"--{f.name} {getattr(self, f.name)}"
            for f in dataclasses.fields(self)
            if f.name != "search_sse" and getattr(self, f.name) != f.default
        ]
        if idle:
            raise ValueError(
                f"{' and '.join(idle)} set how --search_sse searches, but no --search_sse is given, so they would do "
                "nothing: add --search_sse (e.g. '{\"p\": [0, 0.05, 0.1]}') or drop them."
            )

    def candidates(self, base: SSEConfig, sse_switch: bool = True) -> list[SSEConfig]:
        """The config of every combination of the grid on `base` (the --sse_* options), in grid order: each valid,
        and each searched field changing something in some candidate. Checked before any data is read."""
        if not sse_switch:
            raise ValueError(
                "--sse False turns SSE off, but --search_sse searches SSE settings: the two contradict each other. "
                "Drop --sse False; to search label_p (or table_p) without word-piece swaps, add --sse_p 0."
            )
        defaults = SSEConfig()
        overridden = [name for name in self.grid if getattr(base, name) != getattr(defaults, name)]
        if overridden:
            given = ", ".join(f"--{PREFIX}{name} {json.dumps(getattr(base, name))}" for name in overridden)
            raise ValueError(
                f"{given} would do nothing: --search_sse sets {', '.join(overridden)} in every candidate. Drop "
                f"{given}, or put the value among the candidates."
            )
        configs = check_space(self.grid, base, "--search_sse")
        fixed = [name for name in config_field_types() if getattr(base, name) != getattr(defaults, name)]
        idle = {name: idle_fields(configs[0]).get(name) for name in fixed}
        idle = {name: why for name, why in idle.items() if why and all(name in idle_fields(c) for c in configs)}
        if idle:
            given = "; ".join(
                f"--{PREFIX}{name} {json.dumps(getattr(base, name))} ({why})" for name, why in idle.items()
            )
            warnings.warn(
                f"These SSE options do nothing in any --search_sse candidate: {given}. Drop them, or set what they need.",
                UserWarning,
                stacklevel=2,
            )
        return configs


def parse_grid(text: str) -> dict[str, list]:
    """`--search_sse` JSON text as {SSEConfig field: candidate values}; the values are checked together with the
    --sse_* options by `SearchArguments.candidates`."""
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
        try:
            check_no_repeats(name, values, "--search_sse")
        except ValueError as error:  # a dict or list candidate that is no JSON text
            raise ValueError(str(error) if str(error).startswith("--") else f"--search_sse: {error}") from error
    return {name: [field_from_text(name, value) for value in values] for name, values in grid.items()}


def carve_split(dataset, fraction: float, seed: int):
    """(training part, held-out part) of `dataset`, the same every time for the same seed."""
    if len(dataset) < 2 or round(len(dataset) * fraction) < 1:
        raise ValueError(
            f"--search_held_out {fraction} of {len(dataset)} training rows holds out nothing: give more training data "
            "or a larger fraction."
        )
    parts = dataset.train_test_split(test_size=fraction, seed=seed, shuffle=True)
    return parts["train"], parts["test"]


def check_held_out(held_out, metric: str, fraction: float) -> None:
    """The held-out part can give `metric` a score: enough rows, and for a correlation, labels that vary."""
    rows = len(held_out)
    correlation = metric.removeprefix("eval_") in CORRELATIONS
    needed = 3 if correlation else 2
    if rows < needed:
        raise ValueError(
            f"--search_held_out {fraction} holds out {rows} row{'s' if rows != 1 else ''} of the training data, too few "
            f"to score {metric} (it needs at least {needed}): give more training data or a larger --search_held_out."
        )
    if correlation and "labels" in held_out.column_names and len(set(held_out["labels"])) < 2:
        raise ValueError(
            f"The {rows} held-out rows (--search_held_out {fraction}) all have the same label, so {metric} has no "
            "value: give more training data, a larger --search_held_out or another --seed."
        )


def sse_options(config: SSEConfig, searched: list[str]) -> str:
    """The `--sse_*` options that set `config` (its searched fields and those away from their defaults), as shell
    text that the --sse_* parser reads back: lists as separate values, dicts as quoted JSON."""
    defaults, words = SSEConfig(), []
    for name, tp in config_field_types().items():
        value = getattr(config, name)
        if value is None or (name not in searched and value == getattr(defaults, name)):
            continue  # None is every None-able field's default
        kind = typing.get_origin(tp)
        if kind is list:
            if value:  # [] is the default
                words += [f"--{PREFIX}{name}", *(json.dumps(item) for item in value)]
        elif kind is dict:
            words += [f"--{PREFIX}{name}", json.dumps(value)]
        else:
            words += [f"--{PREFIX}{name}", value if isinstance(value, str) else json.dumps(value)]
    return shlex.join(str(word) for word in words)


class _Scores(TrainerCallback):
    """Each trial's parameters and its held-out evaluations (optuna): Trainer's objective is the last of them."""

    def __init__(self, metric: str, held_out_rows: int):
        self.metric, self.held_out_rows, self.trials = metric, held_out_rows, []

    def on_train_begin(self, args, state, control, **kwargs):
        if state.trial_params is not None:
            self.trials.append({"params": dict(state.trial_params), "evaluations": []})

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if state.trial_params is None or not self.trials or not metrics:
            return
        if self.metric not in metrics:
            raise ValueError(
                f"The search scores {self.metric}, but the evaluation gives {sorted(metrics)}: name one of those with "
                "--metric_for_best_model (or leave it out for the task's own metric)."
            )
        score = metrics[self.metric]
        if not (isinstance(score, (int, float)) and math.isfinite(score)):
            raise ValueError(
                f"The candidate {self.trials[-1]['params']} scored {self.metric}={score} on the {self.held_out_rows} "
                f"held-out rows at step {state.global_step}: no score to compare (e.g. constant predictions for a "
                "correlation). Train longer, give a larger --search_held_out, or search a task with another metric."
            )
        self.trials[-1]["evaluations"].append({"step": state.global_step, self.metric: score})


def _least_sse(config: SSEConfig) -> tuple:
    """The order of the tie rule: the smallest p first (p = 0 first), then the other swap probabilities."""
    return config.p, config.decoder_p or 0.0, config.label_p, sum(config.table_p.values())


def search_sse(
    trainer_kwargs: dict[str, Any],
    search_args: SearchArguments,
    base: SSEConfig,
    tokenizer,
    metric: str,
    output_dir: str,
    maximize: bool = True,
) -> dict[str, Any]:
    """Run the grid with `Trainer.hyperparameter_search` (maximising `metric` on the held-out part, or minimising
    it); print, write and return what each candidate scored and the chosen setting (a tie goes to the least SSE,
    and says so)."""
    configs = search_args.candidates(base)
    held_out = trainer_kwargs["eval_dataset"]
    check_held_out(held_out, metric, search_args.search_held_out)
    names = list(search_args.grid)
    grid = {PREFIX + name: [choice_value(name, v) for v in values] for name, values in search_args.grid.items()}
    scores = _Scores(metric, len(held_out))
    callback = SSECallback(base, tokenizer=tokenizer)
    trainer = Trainer(**trainer_kwargs, callbacks=[callback, scores])
    objective = lambda metrics: metrics[metric]  # noqa: E731
    direction = "maximize" if maximize else "minimize"
    if search_args.search_backend == "optuna":
        import optuna

        trainer.hyperparameter_search(
            hp_space=lambda trial: {name: trial.suggest_categorical(name, values) for name, values in grid.items()},
            compute_objective=objective,
            n_trials=len(configs),
            direction=direction,
            backend="optuna",
            sampler=optuna.samplers.GridSampler(grid, seed=trainer.args.seed),
            pruner=optuna.pruners.NopPruner(),  # a grid scores every candidate to its end
        )
        trials = scores.trials
    else:
        best = trainer.hyperparameter_search(
            hp_space=lambda _: {name: _ray_grid(values) for name, values in grid.items()},
            compute_objective=objective,
            n_trials=1,
            direction=direction,
            backend="ray",
            resources_per_trial={"cpu": 1},
            storage_path=os.path.abspath(os.path.join(output_dir, "ray")),
        )
        trials = [
            {"params": {k: t.config[k] for k in grid}, "evaluations": [{metric: t.last_result["objective"]}]}
            for t in best.run_summary.trials
        ]
    candidates = []
    for trial in trials:
        if not trial["evaluations"]:
            raise ValueError(
                f"The candidate {trial['params']} was never scored on {metric}: no evaluation reported it."
            )
        # the candidate's place in the grid: every value of the record is the one --search_sse gave
        index = tuple(grid[PREFIX + name].index(trial["params"][PREFIX + name]) for name in names)
        entry = {PREFIX + name: search_args.grid[name][i] for name, i in zip(names, index)}
        entry[metric] = trial["evaluations"][-1][metric]  # Trainer's objective: the trial's last evaluation
        if len(trial["evaluations"]) > 1:
            entry["evaluations"] = trial["evaluations"]
        candidates.append((index, entry))
    candidates.sort(key=lambda item: item[0])
    best_score = (max if maximize else min)(entry[metric] for _, entry in candidates)
    tied = [(index, entry) for index, entry in candidates if entry[metric] == best_score]
    config_at = dict(zip(_grid_indices(search_args.grid), configs))
    chosen_index, chosen_entry = min(tied, key=lambda item: (_least_sse(config_at[item[0]]), item[0]))
    chosen = config_at[chosen_index]
    settings = lambda entry: {PREFIX + name: entry[PREFIX + name] for name in names}  # noqa: E731
    record = {
        "metric": metric,
        "direction": direction,
        "held_out_fraction": search_args.search_held_out,
        "held_out_rows": len(held_out),
        "seed": trainer.args.seed,
        "backend": search_args.search_backend,
        "score": f"each candidate's last evaluation on the held-out part (what the search optimises); {TIE_RULE}",
        "candidates": [entry for _, entry in candidates],
        "chosen": settings(chosen_entry),
        "chosen_score": best_score,
        "chosen_options": sse_options(chosen, names),
        "tied_with": [settings(entry) for index, entry in tied if index != chosen_index],
    }
    for entry in record["candidates"]:
        print("  ".join(f"{k}={v if k == metric else json.dumps(v)}" for k, v in entry.items()))
    if record["tied_with"]:
        print(f"tie: {len(tied)} candidates scored {metric} {best_score:.4f}; {TIE_RULE}.")
    print(f"chosen: {record['chosen_options']} ({metric} {best_score:.4f} on the held-out part)")
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, SEARCH_FILE), "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)
        handle.write("\n")
    return record


def _grid_indices(grid: dict[str, list]) -> list[tuple[int, ...]]:
    """Every combination's indices into the grid's lists, in the order `check_space` builds their configs."""
    return list(itertools.product(*(range(len(values)) for values in grid.values())))


def _ray_grid(values: list) -> Any:
    from ray import tune

    return tune.grid_search(values)
