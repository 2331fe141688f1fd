"""SSE fields in `Trainer.hyperparameter_search`: a search space over `sse_<field>` names and the config of a trial.

Trainer keeps each trial's parameters in `state.trial_params` and drops the names that are not `TrainingArguments`
fields (with a log line). `SSECallback` reads the `sse_<field>` ones from there, so each trial trains at its own p.
"""

from __future__ import annotations

import itertools
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .config import SSEConfig, config_field_types, field_from_text, idle_fields
from .validation import is_integer, is_number

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


def check_space(
    space: Mapping[str, Sequence[Any]], base: SSEConfig, where: str, *, inert: bool = True
) -> list[SSEConfig]:
    """The config of every combination of `space`'s values ({field: values}; a range given by its two bounds) on
    `base`, checked together: a combination that is no valid config, or (with `inert`) a field that changes nothing
    in any combination, is an error naming `where` (the search)."""
    names = list(space)
    configs: list[SSEConfig] = []
    for values in itertools.product(*(space[name] for name in names)):
        chosen = dict(zip(names, values))
        try:
            configs.append(base.replace(**trial_overrides({PREFIX + k: v for k, v in chosen.items()})))
        except (TypeError, ValueError) as error:
            shown = ", ".join(f"{k}={v!r}" for k, v in chosen.items())
            raise ValueError(f"{where}: the combination {shown} is no valid SSE setting: {error}") from error
    defaults = SSEConfig()
    for name in names if inert else ():  # idle where set, and at its default (idle as well) elsewhere
        reasons = [idle_fields(config).get(name) for config in configs]
        set_somewhere = [getattr(config, name) != getattr(defaults, name) for config in configs]
        if any(reasons) and all(reason or not changed for reason, changed in zip(reasons, set_somewhere)):
            raise ValueError(
                f"{where}: {name} changes nothing in any candidate ({next(filter(None, reasons))}), so every "
                f"candidate would train the same as with its default. Drop {name} from the search, or set what it needs."
            )
    return configs


def check_no_repeats(name: str, values: Sequence[Any], where: str) -> None:
    """A list of candidates names each value once (0 and 0.0 are the same p): a repeat would train it twice."""
    seen: list[Any] = []
    for value in values:
        value = field_from_text(name, value)
        if any(value == other for other in seen):
            raise ValueError(f"{where}: {name} lists {value!r} twice in {list(values)!r}: give each candidate once.")
        seen.append(value)


def _optional_base(tp: Any) -> Any:
    """`tp` without its None: `int | None` -> int."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def choice_value(name: str, value: Any) -> Any:
    """A list or dict choice as JSON text: optuna keeps only scalars and None in persistent storage."""
    kind = typing.get_origin(config_field_types()[name])
    return json.dumps(value, sort_keys=True) if kind in (dict, list) and not isinstance(value, str) else value


def sse_hp_space(**space: tuple[float, float] | Sequence[Any]) -> Callable[[Any], dict[str, Any]]:
    """An `hp_space` for `Trainer.hyperparameter_search` over SSE fields, for the optuna and ray backends.

    Give each field a `(low, high)` tuple for a range (of integers for integer fields such as `graph_k`) or a list
    of values to choose from, e.g. `sse_hp_space(p=[0.0, 0.05, 0.1], label_p=(0.0, 0.1))`. The trials' parameters
    are named `sse_<field>`. Add TrainingArguments fields with `{**space(trial), "learning_rate": ...}` in your own
    hp_space; set fixed SSE values on the SSECallback's config (or as a one-value list here), not beside them.
    Every combination of the values (a range by its bounds) is checked now, together, with the other fields at
    their defaults; the callback checks it again with its own config when the first trial begins.
    """
    fields = config_field_types()
    if not space:
        raise ValueError("sse_hp_space needs at least one field, e.g. sse_hp_space(p=[0.0, 0.05, 0.1]).")
    corners = {}
    for name, values in space.items():
        if name not in fields:
            raise ValueError(f"sse_hp_space got {name!r}, which is no SSEConfig field. Choose from {sorted(fields)}.")
        if isinstance(values, tuple):
            kind = _optional_base(fields[name])
            if kind not in (int, float):
                raise ValueError(
                    f"sse_hp_space({name}={values!r}): a (low, high) range needs a number field; give {name} a list "
                    "of values to choose from."
                )
            check = is_integer if kind is int else is_number
            if len(values) != 2 or not all(check(v) for v in values):
                what = "integers" if kind is int else "numbers"
                raise ValueError(
                    f"sse_hp_space({name}=...): a range is a (low, high) tuple of {what}, got {values!r}."
                )
            if values[0] > values[1]:
                raise ValueError(f"sse_hp_space({name}={values!r}): low must not be above high.")
        elif isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ValueError(
                f"sse_hp_space({name}=...) takes a (low, high) tuple or a non-empty list of values, got {values!r}."
            )
        else:
            check_no_repeats(name, values, "sse_hp_space")
        corners[name] = list(values)
    try:  # every combination is a valid config: errors now, not in a trial
        check_space(corners, SSEConfig(), "sse_hp_space", inert=False)
    except ValueError as error:
        raise ValueError(
            f"{error} (The fields outside the space are at their SSEConfig defaults here: if your callback's config "
            "sets them, add them to the space as one-value lists, e.g. p_warmup_ratio=[0.1].)"
        ) from error
    integer_ranges = {
        name for name, values in space.items() if isinstance(values, tuple) and _optional_base(fields[name]) is int
    }
    choices = {
        name: [choice_value(name, v) for v in values]
        for name, values in space.items()
        if not isinstance(values, tuple)
    }

    def hp_space(trial: Any) -> dict[str, Any]:
        if trial is None:  # the ray backend calls hp_space(None) for its search space
            from ray import tune

            return {
                PREFIX + name: tune.choice(choices[name])
                if name in choices
                else tune.randint(values[0], values[1] + 1)
                if name in integer_ranges
                else tune.uniform(*values)
                for name, values in space.items()
            }
        if not callable(getattr(trial, "suggest_float", None)):
            raise TypeError(
                f"sse_hp_space supports the optuna and ray backends, got a {type(trial).__name__} trial. For other "
                f"backends, name the SSE fields {PREFIX}<field> in your own hp_space."
            )
        return {
            PREFIX + name: trial.suggest_categorical(PREFIX + name, choices[name])
            if name in choices
            else trial.suggest_int(PREFIX + name, *values)
            if name in integer_ranges
            else trial.suggest_float(PREFIX + name, *values)
            for name, values in space.items()
        }

    hp_space.sse_space = corners  # the callback checks it against its own config before the first trial trains
    return hp_space


def check_trial_space(trainer: Any, params: Mapping[str, Any] | None, base: SSEConfig, *, first: bool) -> None:
    """Before a trial trains: every combination of an `sse_hp_space` on the callback's config (at the first trial),
    and, under optuna, no `sse_` value the hp_space returns beside its suggestions. Optuna hands Trainer only what it
    suggested (`trial.params`, which becomes `state.trial_params`): a fixed or transformed value would never arrive."""
    hp_space, trial = getattr(trainer, "hp_space", None), getattr(trainer, "_trial", None)
    space = getattr(hp_space, "sse_space", None)
    if first and isinstance(space, dict):
        check_space(space, base, "sse_hp_space, with the SSECallback's config")
    if not callable(hp_space) or not callable(getattr(trial, "suggest_float", None)):
        return  # ray and wandb hand Trainer the whole resolved space: fixed values arrive with the rest
    try:
        returned = hp_space(trial)  # optuna answers a name it suggested before with the same value
    except Exception:  # an hp_space that cannot run twice: leave the check out rather than stop a search
        return
    params = params or {}
    lost = {
        key: value
        for key, value in (returned or {}).items()
        if isinstance(key, str) and key.startswith(PREFIX) and (key not in params or params[key] != value)
    }
    if lost:
        shown = ", ".join(
            f"{key}={value!r}" + (f" (suggested as {params[key]!r})" if key in params else "")
            for key, value in lost.items()
        )
        raise ValueError(
            f"The hp_space returns {shown}, but optuna hands Trainer only the values it suggested under their own "
            f"names ({dict(params)}): the trial would train on those (the callback's config elsewhere), not on "
            "what the hp_space returns, and best_sse_config would show the same. "
            "Set a fixed SSE value on the SSECallback's config (SSECallback(SSEConfig(label_p=0.5))) or make it a "
            "one-value choice (sse_hp_space(label_p=[0.5])); suggest each sse_<field> under that name, "
            "trial.suggest_float('sse_p', ...), and return it unchanged."
        )
