"""`SSEArguments`: every `SSEConfig` field as an `--sse_<name>` command-line option, for `HfArgumentParser`.

The dataclass is generated from `dataclasses.fields(SSEConfig)`, so a field added to `SSEConfig` later
shows up here (and in `--help`) without touching the recipes.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from typing import Any, Literal, Union

from sse_hf import SSECallback, SSEConfig

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


def _sse_field(config_field: dataclasses.Field, tp: Any) -> tuple[str, Any, dataclasses.Field]:
    """The `--sse_<name>` twin of one SSEConfig field: same default and help; JSON text where argparse cannot cope."""
    metadata = dict(config_field.metadata)
    if config_field.default is not dataclasses.MISSING:
        default_kwargs = {"default": config_field.default}
    elif config_field.default_factory is not dataclasses.MISSING:
        default_kwargs = {"default_factory": config_field.default_factory}
    else:
        default_kwargs = {"default": None}
    if not _is_parser_friendly(tp):
        # E.g. a dict or a nested object: take it as JSON text on the command line, a value in a JSON args file.
        metadata["help"] = metadata.get("help", "") + " (Give it as JSON text.)"
        tp = Any
    return PREFIX + config_field.name, tp, dataclasses.field(metadata=metadata, **default_kwargs)


def _build_sse_arguments() -> type:
    hints = typing.get_type_hints(SSEConfig)
    fields = [
        (
            "sse",
            bool,
            dataclasses.field(
                default=True,
                metadata={
                    "help": "Apply Stochastic Shared Embeddings while training. --sse False (or --sse_p 0) trains the "
                    "plain baseline with the same recipe."
                },
            ),
        )
    ]
    fields += [_sse_field(f, hints[f.name]) for f in dataclasses.fields(SSEConfig) if f.init]
    # HfArgumentParser cannot parse `Any`; give such fields a str type so that they arrive as JSON text.
    fields = [(name, str | None if tp is Any else tp, spec) for name, tp, spec in fields]
    cls = dataclasses.make_dataclass("SSEArguments", fields, namespace={"__module__": __name__})
    cls.__doc__ = "Stochastic Shared Embeddings settings: each SSEConfig field as --sse_<field>, plus the --sse switch."
    cls._argument_group_name = "Stochastic Shared Embeddings (SSE) options"  # their own heading in --help
    return cls


SSEArguments = _build_sse_arguments()


def _json_fields() -> set[str]:
    hints = typing.get_type_hints(SSEConfig)
    return {f.name for f in dataclasses.fields(SSEConfig) if f.init and not _is_parser_friendly(hints[f.name])}


def to_sse_config(args: Any) -> SSEConfig:
    """The validated `SSEConfig` that `args` (an `SSEArguments`) describes; errors name the `--sse_` option."""
    values = {}
    json_fields = _json_fields()
    for config_field in dataclasses.fields(SSEConfig):
        if not config_field.init:
            continue
        value = getattr(args, PREFIX + config_field.name)
        if config_field.name in json_fields and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass  # a plain word (e.g. a schedule's name) stays a string; SSEConfig validates it
        values[config_field.name] = value
    try:
        return SSEConfig(**values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Invalid SSE arguments: {error} (set them with --{PREFIX}<field>).") from error


def sse_is_active(args: Any, config: SSEConfig | None = None) -> bool:
    """True when the run should train with SSE: the switch is on and the config swaps something."""
    return bool(args.sse) and (config or to_sse_config(args)).is_active


def build_sse_callback(args: Any, config: SSEConfig, tokenizer=None) -> SSECallback | None:
    """The `SSECallback` for this run's `config`, or None when SSE is off (the baseline trains with no hook)."""
    return SSECallback(config, tokenizer=tokenizer) if sse_is_active(args, config) else None


def sse_settings(args: Any, config: SSEConfig) -> dict[str, Any]:
    """The SSE settings of a run, for all_results.json: whether it was on, and every SSEConfig field."""
    return {"sse_enabled": sse_is_active(args, config), **{PREFIX + k: v for k, v in config.to_dict().items()}}
