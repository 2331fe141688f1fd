"""`SSEConfig.swap_tokens`: the input positions SSE may swap: every token, the prompt only, or the completion."""

from __future__ import annotations

import typing
from typing import Any, Literal

import torch

# The choices of SSEConfig.swap_tokens: its type, so that --help lists them.
SwapTokens = Literal["all", "prompt", "completion"]
SWAP_TOKENS = typing.get_args(SwapTokens)
IGNORE_INDEX = -100


def scope_mask(swap_tokens: str, model_kwargs: dict[str, Any]) -> torch.Tensor | None:
    """A bool mask, shaped like the input ids, of the positions `swap_tokens` allows; None for "all".

    The completion is what the loss predicts. TRL's `completion_mask` (1 on completion tokens) says so
    directly; otherwise `labels` do: Hugging Face causal LMs take labels aligned with the input positions
    (the shift happens inside the loss), so position i is completion iff labels[i] != -100. That is a
    per-token rule, so packed rows holding several sequences need nothing more. Raises a ValueError when
    neither is passed.
    """
    if swap_tokens == "all":
        return None
    completion = model_kwargs.get("completion_mask")
    if isinstance(completion, torch.Tensor):
        completion = completion.bool()
    else:
        labels = model_kwargs.get("labels")
        if not isinstance(labels, torch.Tensor) or labels.is_floating_point():
            raise ValueError(
                f"SSEConfig.swap_tokens={swap_tokens!r} needs per-token `labels` (-100 on the prompt) or a "
                "`completion_mask` passed to the model's forward in every training step, but this step had neither. "
                "Train with labels (TRL's SFTTrainer and Trainer's causal-LM collators pass them), or use "
                "swap_tokens='all'."
            )
        completion = labels != IGNORE_INDEX
    return completion if swap_tokens == "completion" else ~completion


def restrict_swap(swap, allowed: torch.Tensor | None, input_ids: torch.Tensor, swap_tokens: str):
    """`swap` with every position outside `allowed` put back to its original id and left out of the counts."""
    if allowed is None:  # the lookup ran outside the patched model's forward: no labels were seen
        scope_mask(swap_tokens, {})  # raises the error that says what is missing
    if allowed.shape != input_ids.shape:
        raise ValueError(
            f"SSEConfig.swap_tokens={swap_tokens!r} reads the prompt/completion split from labels or completion_mask, "
            f"but they have shape {tuple(allowed.shape)} and the input ids {tuple(input_ids.shape)}: per-token labels "
            "aligned with input_ids are needed (causal LMs). Use swap_tokens='all' for this model."
        )
    allowed = allowed.to(input_ids.device)
    return type(swap)(torch.where(allowed, swap.ids, input_ids), swap.swapped & allowed, swap.eligible & allowed)
