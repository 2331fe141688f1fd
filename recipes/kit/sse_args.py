"""The recipes' `--sse_*` options: the library's `SSEArguments` (every `SSEConfig` field as `--sse_<name>`, plus
the `--sse` switch), and what a run records about them.
"""

from __future__ import annotations

from typing import Any

from sse_hf import SSEArguments, SSECallback, SSEConfig
from sse_hf.arguments import PREFIX

__all__ = ["SSEArguments", "build_sse_callback", "sse_is_active", "sse_settings", "to_sse_config"]


def to_sse_config(args: Any) -> SSEConfig:
    """The validated `SSEConfig` that `args` (an `SSEArguments`) describes; errors name the `--sse_` option."""
    return args.to_config()


def sse_is_active(args: Any, config: SSEConfig | None = None) -> bool:
    """True when the run should train with SSE: the switch is on and the config swaps something."""
    return bool(args.sse) and (config or to_sse_config(args)).is_active


def build_sse_callback(args: Any, config: SSEConfig, tokenizer=None) -> SSECallback | None:
    """The `SSECallback` for this run's `config`, or None when SSE is off (the baseline trains with no hook)."""
    return SSECallback(config, tokenizer=tokenizer) if sse_is_active(args, config) else None


def sse_settings(args: Any, config: SSEConfig) -> dict[str, Any]:
    """The SSE settings of a run, for all_results.json: whether it was on, and every SSEConfig field."""
    return {"sse_enabled": sse_is_active(args, config), **{PREFIX + k: v for k, v in config.to_dict().items()}}
