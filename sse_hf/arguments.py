"""`SSEArguments`: every `SSEConfig` field as an `--sse_<field>` option for `HfArgumentParser`, beside
`TrainingArguments` (the prefix keeps `--sse_seed` apart from `--seed`).

The dataclass is generated from `dataclasses.fields(SSEConfig)`: the fields' help is the single source of the
options' help, and a field added to `SSEConfig` shows up here without touching a script. Dict fields
(`--sse_table_p`) take JSON text on the command line, or a value in a JSON arguments file.

    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments, SSEArguments))
    model_args, data_args, training_args, sse_args = parser.parse_args_into_dataclasses()
    trainer = Trainer(..., callbacks=sse_args.callbacks(tokenizer))
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any, Literal, Union

from .callback import SSECallback
from .config import SSEConfig, config_field_types, field_from_text

PREFIX = "sse_"
_SCALARS = (bool, int, float, str)


def _is_parser_friendly(tp: Any) -> bool:
    """True if HfArgumentParser can turn a command-line string into `tp` on its own."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return len(args) == 1 and _is_parser_friendly(args[0])
    if origin is Literal or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
        return True
    if origin is list:
        (item,) = typing.get_args(tp) or (None,)
        return item in _SCALARS
    return tp in _SCALARS


def _option(config_field: dataclasses.Field, tp: Any) -> tuple[str, Any, dataclasses.Field]:
    """The `--sse_<name>` twin of one SSEConfig field: same default and help; JSON text where argparse cannot cope."""
    metadata = dict(config_field.metadata)
    if config_field.default is not dataclasses.MISSING:
        default_kwargs = {"default": config_field.default}
    elif config_field.default_factory is not dataclasses.MISSING:
        default_kwargs = {"default_factory": config_field.default_factory}
    else:
        default_kwargs = {"default": None}
    if not _is_parser_friendly(tp):  # e.g. a dict: JSON text on the command line, a value in a JSON args file
        metadata["help"] = metadata.get("help", "") + " (Give it as JSON text.)"
        tp = str | None
    return PREFIX + config_field.name, tp, dataclasses.field(metadata=metadata, **default_kwargs)


def _to_config(self) -> SSEConfig:
    """The validated `SSEConfig` these options describe; an invalid value is an error naming its `--sse_` option."""
    values = {name: getattr(self, PREFIX + name) for name in config_field_types()}
    try:
        return SSEConfig(**{name: field_from_text(name, value) for name, value in values.items()})
    except (TypeError, ValueError) as error:
        raise ValueError(f"Invalid SSE arguments: {error} (set them with --{PREFIX}<field>).") from error


def _is_active(self) -> bool:
    """True when training should use SSE: the `--sse` switch is on and some swap probability is above 0."""
    return bool(self.sse) and self.to_config().is_active


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
    fields = [("sse", bool, switch)]
    fields += [_option(f, config_field_types()[f.name]) for f in dataclasses.fields(SSEConfig) if f.init]
    namespace = {"__module__": __name__, "to_config": _to_config, "is_active": _is_active, "callbacks": _callbacks}
    cls = dataclasses.make_dataclass("SSEArguments", fields, namespace=namespace)
    cls.__doc__ = (
        "Stochastic Shared Embeddings options for HfArgumentParser: each SSEConfig field as --sse_<field>, plus the "
        "--sse switch. `to_config()` builds the SSEConfig, `callbacks(tokenizer)` the Trainer callbacks."
    )
    cls._argument_group_name = "Stochastic Shared Embeddings (SSE) options"  # their own heading in --help
    return cls


SSEArguments = _build()
