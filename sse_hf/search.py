"""SSE fields in `Trainer.hyperparameter_search`: a search space over `sse_<field>` names and the config of a trial.

Trainer keeps each trial's parameters in `state.trial_params` and drops the names that are not `TrainingArguments`
fields (with a log line). `SSECallback` reads the `sse_<field>` ones from there, so each trial trains at its own p.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .config import SSEConfig, config_field_types, field_from_text
from .validation import is_number

PREFIX = "sse_"


def trial_overrides(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The SSEConfig fields a trial sets: its `sse_<field>` parameters, by field name. Other names are left alone;
    an `sse_` name that is no SSEConfig field is a clear error."""
    fields = config_field_types()
    overrides = {}
    for key, value in (params or {}).items():
        if not (isinstance(key, str) and key.startswith(PREFIX)):
            continue
        name = key[len(PREFIX) :]
        if name not in fields:
            raise ValueError(
                f"The hyperparameter search names {key!r}, but SSEConfig has no field {name!r}. Name SSE fields "
                f"{PREFIX}<field>, one of: {sorted(PREFIX + field for field in fields)}."
            )
        overrides[name] = field_from_text(name, value)
    return overrides


def trial_config(base: SSEConfig, params: Mapping[str, Any] | None) -> SSEConfig:
    """`base` with the `sse_<field>` values of a trial's parameters; an invalid value is an error naming it."""
    overrides = trial_overrides(params)
    try:
        return base.replace(**overrides)
    except ValueError as error:
        raise ValueError(f"The hyperparameter search set {overrides}: {error}") from error


def best_sse_config(best_run: Any, base: SSEConfig | None = None) -> SSEConfig:
    """The SSEConfig of the best trial: `base` (the callback's config) with the `sse_<field>` values of
    `best_run.hyperparameters`, as `Trainer.hyperparameter_search` returns it."""
    hyperparameters = getattr(best_run, "hyperparameters", best_run)
    if not isinstance(hyperparameters, Mapping):
        raise TypeError(
            f"best_sse_config expects the BestRun that Trainer.hyperparameter_search returns (or its hyperparameters "
            f"dict), got {type(best_run).__name__}."
        )
    return trial_config(base if base is not None else SSEConfig(), hyperparameters)


def sse_hp_space(**space: tuple[float, float] | Sequence[Any]) -> Callable[[Any], dict[str, Any]]:
    """An `hp_space` for `Trainer.hyperparameter_search` over SSE fields, for the optuna and ray backends.

    Give each field a `(low, high)` tuple for a float range or a list of values to choose from, e.g.
    `sse_hp_space(p=[0.0, 0.05, 0.1], label_p=(0.0, 0.1))`. The trials' parameters are named `sse_<field>`.
    Add TrainingArguments fields with `{**space(trial), "learning_rate": ...}` in your own hp_space.
    """
    fields = config_field_types()
    if not space:
        raise ValueError("sse_hp_space needs at least one field, e.g. sse_hp_space(p=[0.0, 0.05, 0.1]).")
    for name, values in space.items():
        if name not in fields:
            raise ValueError(f"sse_hp_space got {name!r}, which is no SSEConfig field. Choose from {sorted(fields)}.")
        if isinstance(values, tuple):
            if len(values) != 2 or not all(is_number(v) for v in values):
                raise ValueError(
                    f"sse_hp_space({name}=...): a range is a (low, high) tuple of numbers, got {values!r}."
                )
            if values[0] > values[1]:
                raise ValueError(f"sse_hp_space({name}={values!r}): low must not be above high.")
        elif isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ValueError(
                f"sse_hp_space({name}=...) takes a (low, high) tuple or a non-empty list of values, got {values!r}."
            )
        for value in values:  # every bound and choice is a valid value of its field: errors now, not in a trial
            trial_config(SSEConfig(), {PREFIX + name: value})

    def hp_space(trial: Any) -> dict[str, Any]:
        if trial is None:  # the ray backend calls hp_space(None) for its search space
            from ray import tune

            return {
                PREFIX + name: tune.uniform(*values) if isinstance(values, tuple) else tune.choice(list(values))
                for name, values in space.items()
            }
        if not callable(getattr(trial, "suggest_float", None)):
            raise TypeError(
                f"sse_hp_space supports the optuna and ray backends, got a {type(trial).__name__} trial. For other "
                f"backends, name the SSE fields {PREFIX}<field> in your own hp_space."
            )
        return {
            PREFIX + name: trial.suggest_float(PREFIX + name, *values)
            if isinstance(values, tuple)
            else trial.suggest_categorical(PREFIX + name, list(values))
            for name, values in space.items()
        }

    return hp_space
