"""`SSEArguments`: every `SSEConfig` field as an `--sse_<field>` option for `HfArgumentParser`, beside
`TrainingArguments` (the prefix keeps `--sse_seed` apart from `--seed`).

The dataclass is generated from `dataclasses.fields(SSEConfig)`: the fields' help is the single source of the
options' help, and a field added to `SSEConfig` shows up here without touching a script. Each option takes text,
read the same way from a command line and from a JSON or YAML arguments file (`"sse_p": "0.1"` is `--sse_p 0.1`):
numbers as numbers, `null`/`None` for a field that may be None, lists one by one (`5 6`) or as a JSON list
(`[5, 6]`, the form a search prints), dicts (`--sse_table_p`) as JSON text. The values are checked as they are
parsed: a bad one is an `SSEArgumentError` naming its `--sse_` option, and options that would do nothing under
the others given (any of them under `--sse False`) are a warning.

    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments, SSEArguments))
    model_args, data_args, training_args, sse_args = parser.parse_args_into_dataclasses()
    trainer = Trainer(..., callbacks=sse_args.callbacks(tokenizer))
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import types
import typing
import warnings
from typing import Any, Literal, Union

from .callback import SSECallback
from .config import SSEConfig, config_field_types, field_from_text, idle_fields
from .validation import check_switch

PREFIX = "sse_"
SWITCH = "sse"
NONE_TEXTS = ("null", "None")  # JSON's and Python's spelling of None, for the fields that may be None


class SSEArgumentError(ValueError):
    """An invalid `--sse` / `--sse_*` value: `option` names it as the user typed it, `reason` says what is wrong."""

    def __init__(self, option: str, reason: str):
        self.option, self.reason = option, reason
        super().__init__(f"argument {option}: {reason}")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """(`tp` without None, whether None was allowed)."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


def _is_choice(tp: Any) -> bool:
    """True for an enumerated field (a Literal or an Enum): argparse checks and --help lists its choices."""
    tp, _ = _unwrap_optional(tp)
    return typing.get_origin(tp) is Literal or (isinstance(tp, type) and issubclass(tp, enum.Enum))


def _option(config_field: dataclasses.Field, tp: Any) -> tuple[str, Any, dataclasses.Field]:
    """The `--sse_<name>` twin of one SSEConfig field: same default and help. Enumerated fields keep their choices;
    every other option takes text (lists one value per word), which `_from_text` reads after parsing."""
    metadata = dict(config_field.metadata)
    if config_field.default is not dataclasses.MISSING:
        default_kwargs = {"default": config_field.default}
    elif config_field.default_factory is not dataclasses.MISSING:
        default_kwargs = {"default_factory": config_field.default_factory}
    else:
        default_kwargs = {"default": None}
    origin = typing.get_origin(_unwrap_optional(tp)[0])
    if _is_choice(tp):
        option_type = tp
    elif origin is list:
        metadata["help"] = metadata.get("help", "") + " (One by one, 5 6, or as a JSON list, [5, 6].)"
        option_type = list[str]
    else:
        if origin is dict:
            metadata["help"] = metadata.get("help", "") + " (Give it as JSON text.)"
        option_type = str | None
    return PREFIX + config_field.name, option_type, dataclasses.field(metadata=metadata, **default_kwargs)


def _scalar_from_text(name: str, tp: Any, text: str) -> Any:
    """One value of SSEConfig field `name` (type `tp`) given as text, as the command line reads it."""
    tp, optional = _unwrap_optional(tp)
    if optional and text.strip() in NONE_TEXTS:
        return None
    if tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            kind = "an integer" if tp is int else "a number"
            raise ValueError(f"SSEConfig.{name} must be {kind}, got {text!r}.") from None
    return text


def _from_text(name: str, tp: Any, value: Any) -> Any:
    """The value of SSEConfig field `name` from its option: text (or, for a list, words) read as the command line
    reads it; a value that is no text (from a JSON or YAML file, or from code) is left for SSEConfig to check."""
    inner, optional = _unwrap_optional(tp)
    if typing.get_origin(inner) is list:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
            text = " ".join(value).strip()
            if optional and text in NONE_TEXTS:
                return None
            if text.startswith("["):  # the JSON form a search prints: [20] or [20, 30] (perhaps split into words)
                return field_from_text(name, text)
            (item_type,) = typing.get_args(inner) or (str,)
            return [_scalar_from_text(name, item_type, word) for word in re.split(r"[\s,]+", text) if word]
        return value
    if not isinstance(value, str) or _is_choice(inner):
        return value
    if typing.get_origin(inner) is dict:
        return None if optional and value.strip() in NONE_TEXTS else field_from_text(name, value)
    return _scalar_from_text(name, tp, value)


def _option_text(message: str) -> str:
    """`message` from SSEConfig, naming fields as `SSEConfig.<field>` (or bare, when they hold an underscore),
    restated for the command line: each as `--sse_<field>`."""
    fields = "|".join(sorted((f for f in config_field_types() if "_" in f), key=len, reverse=True))
    message = re.sub(r"\bSSEConfig\.(\w+)", rf"--{PREFIX}\1", message)
    return re.sub(rf"(?<![\w-])({fields})\b", rf"--{PREFIX}\1", message)


def _as_option_error(error: ValueError, name: str | None = None) -> SSEArgumentError:
    """`error` from SSEConfig as an SSEArgumentError naming the option: `--sse_<name>`, else the first named."""
    message = _option_text(str(error))
    named = re.match(rf"--{PREFIX}\w+", message)
    option = f"--{PREFIX}{name}" if name else (named.group(0) if named else f"--{PREFIX}<field>")
    if message.startswith(option):
        message = message[len(option) :].lstrip()
    return SSEArgumentError(option, message)


def _post_init(self) -> None:
    """Read every option's text, check the whole config now (a bad value is an SSEArgumentError naming its option)
    and warn about the options given that do nothing under the others."""
    try:
        self.sse = check_switch("--sse", self.sse)
    except ValueError as error:
        raise SSEArgumentError("--sse", str(error).removeprefix("--sse ")) from None
    for name, tp in config_field_types().items():
        try:
            setattr(self, PREFIX + name, _from_text(name, tp, getattr(self, PREFIX + name)))
        except ValueError as error:
            raise _as_option_error(error, name) from None
    config = self.to_config()
    if self.sse:
        idle = idle_fields(config)
    else:
        defaults = SSEConfig()
        idle = {
            n: "SSE is off: --sse False" for n in config_field_types() if getattr(config, n) != getattr(defaults, n)
        }
    if idle:
        given = "; ".join(
            f"--{PREFIX}{name} {json.dumps(getattr(config, name))} ({why})" for name, why in idle.items()
        )
        warnings.warn(
            _option_text(
                f"These SSE options do nothing under the others given: {given}. Drop them, or set what they need."
            ),
            UserWarning,
            stacklevel=3,
        )


def _to_config(self) -> SSEConfig:
    """The validated `SSEConfig` these options describe; an invalid value is an SSEArgumentError naming its option."""
    try:
        return SSEConfig(**{name: getattr(self, PREFIX + name) for name in config_field_types()})
    except (TypeError, ValueError) as error:
        raise _as_option_error(error) from None


def _is_active(self) -> bool:
    """True when training should use SSE: the `--sse` switch is on and some swap probability is above 0."""
    return self.sse and self.to_config().is_active


def _callbacks(self, tokenizer=None) -> list[SSECallback]:
    """`[SSECallback(config)]` for `Trainer(callbacks=...)`, or `[]` when SSE is off (the plain baseline)."""
    return [SSECallback(self.to_config(), tokenizer=tokenizer)] if self.is_active() else []


def _build() -> type:
    switch = dataclasses.field(
        default=True,
        metadata={
            "help": "Apply Stochastic Shared Embeddings while training. --sse False (or --sse_p 0) trains the plain "
            "baseline with the same script."
        },
    )
    fields = [(SWITCH, bool, switch)]
    fields += [_option(f, config_field_types()[f.name]) for f in dataclasses.fields(SSEConfig) if f.init]
    namespace = {
        "__module__": __name__,
        "__post_init__": _post_init,
        "to_config": _to_config,
        "is_active": _is_active,
        "callbacks": _callbacks,
    }
    cls = dataclasses.make_dataclass("SSEArguments", fields, namespace=namespace)
    cls.__doc__ = (
        "Stochastic Shared Embeddings options for HfArgumentParser: each SSEConfig field as --sse_<field>, plus the "
        "--sse switch. `to_config()` builds the SSEConfig, `callbacks(tokenizer)` the Trainer callbacks."
    )
    cls._argument_group_name = "Stochastic Shared Embeddings (SSE) options"  # their own heading in --help
    return cls


SSEArguments = _build()
