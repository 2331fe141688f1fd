"""The bodies of SSE's forward hooks: swap token ids, swap labels, check a training step's inputs, and read which
positions `swap_tokens` allows. They run only in training steps (training mode and grad mode, and not disabled).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from .config import SSEConfig
from .discovery import declared_rows, find_token_embeddings
from .lookups import LabelSwap, Lookup
from .sampling import swap_labels
from .schedule import ScheduleState
from .streams import RandomStreams
from .swap_tokens import IGNORE_INDEX, restrict_swap, scope_mask

# The id dtypes an embedding lookup accepts; ids of any other dtype pass through for the embedding to reject.
ID_DTYPES = (torch.long, torch.int32)


class SwapHooks:
    """The hook bodies over one model, and the state one forward pass shares between them."""

    def __init__(
        self,
        model: nn.Module,
        config: SSEConfig,
        lookups: list[Lookup],
        labels: LabelSwap,
        schedule: ScheduleState,
        streams: RandomStreams,
    ):
        self.model = model
        self.config = config
        self.lookups = lookups
        self.labels = labels
        self.schedule = schedule
        self.streams = streams
        self.enabled = True  # off inside `SSEHandle.disabled()`
        self._warned: set[str] = set()
        self._running: set[int] = set()  # ids of the encoder/decoder stacks whose forward is under way
        self._scope: torch.Tensor | None = None  # positions swap_tokens allows in the forward under way
        # A hooked word-piece lookup ran since the model's last forward ended: PEFT's prompt tuning looks the ids up
        # itself and then calls the model with inputs_embeds, which SSE has swapped already.
        self._looked_up = False

    def active(self, module: nn.Module) -> bool:
        """Only in training steps: eval loops, predict and generate run in eval mode or without grad."""
        return module.training and self.enabled and torch.is_grad_enabled()

    # ----- token ids --------------------------------------------------------------------------
    def swap_token_ids(self, lookup: Lookup):
        """The pre-hook of one embedding table: swap its ids with the lookup's sampler at its effective p."""

        def swap_token_ids(module: nn.Module, args: tuple, kwargs: dict):
            p = lookup.base_p * self.schedule.factor
            if not self.active(module):
                return None
            if lookup.stack is not None and id(lookup.stack) not in self._running:
                return None  # a shared embedding called by the other stack
            if args:
                input_ids, key = args[0], None
            elif "input" in kwargs or "input_ids" in kwargs:
                key = "input" if "input" in kwargs else "input_ids"
                input_ids = kwargs[key]
            else:
                return None
            if not isinstance(input_ids, torch.Tensor) or input_ids.dtype not in ID_DTYPES:
                return None  # the embedding itself accepts or rejects these, exactly as unpatched
            if input_ids.device.type == "meta":
                return None  # nothing to draw on a meta device; the plain lookup runs as it would
            self._check_table(lookup, module)
            # At p = 0 the sampler draws nothing and swaps nothing: the tokens still count as seen (rates cover all).
            swap = lookup.sampler(input_ids, p, self.streams.generator(input_ids.device) if p > 0 else None)
            if self.config.swap_tokens != "all" and lookup.is_word_piece:
                swap = restrict_swap(swap, self._scope, input_ids, self.config.swap_tokens)
            lookup.counts.add(swap.eligible, swap.swapped)
            if lookup.is_word_piece:
                self._looked_up = True
            if p <= 0.0:
                return None
            if key is None:
                return (swap.ids, *args[1:]), kwargs
            return args, {**kwargs, key: swap.ids}

        return swap_token_ids

    def stack_entered(self, module: nn.Module, args: tuple) -> None:
        self._running.add(id(module))

    def stack_left(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._running.discard(id(module))

    def forward_ended(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._looked_up = False

    # ----- labels -----------------------------------------------------------------------------
    def swap_labels(self, module: nn.Module, args: tuple, kwargs: dict):
        """The model's pre-hook for label SSE: swap the `labels` it receives at the labels' effective p."""
        if not self.active(module):
            return None
        labels, base_p = kwargs.get("labels"), self.labels.base_p
        p = base_p * self.schedule.factor
        if base_p > 0 and labels is None and "no_labels" not in self._warned:
            self._warn_once(
                "no_labels",
                f"sse_hf: label_p={base_p} is set, but this training forward pass got no labels, so no "
                "label is swapped (a loss computed outside the model, e.g. Trainer's compute_loss_func or "
                "label_smoothing_factor, takes them out first). Pass labels to the model, or set label_p=0.",
            )
        if base_p <= 0.0 or not isinstance(labels, torch.Tensor) or labels.device.type == "meta":
            return None
        if labels.is_floating_point():
            self._warn_once(
                "float_labels",
                "sse_hf: label_p is set but the labels are floating point (regression or multi-label), so label "
                "SSE is skipped. Use it with single-label classification.",
            )
            return None
        swap = swap_labels(
            labels, p, self.labels.num_classes, self.streams.generator(labels.device) if p > 0 else None
        )
        self.labels.counts.add(swap.eligible, swap.swapped)
        return (args, {**kwargs, "labels": swap.ids}) if p > 0 else None

    # ----- checks of a training step's inputs ---------------------------------------------------
    def check_inputs(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """Per training forward of the model or an embedding's holder: the hooked embeddings are still in place, and
        input ids (not `inputs_embeds`) are used. Python attribute lookups only: no host sync."""
        if not self.active(module):
            return
        self._check_embeddings_in_place()
        embeds_only = kwargs.get("inputs_embeds") is not None and kwargs.get("input_ids") is None and not args
        if embeds_only and not self._looked_up:
            self._warn_once(
                "inputs_embeds",
                f"sse_hf: {type(module).__name__} was called with inputs_embeds instead of input_ids, so SSE "
                "cannot swap token ids and these steps train without SSE. Pass input_ids to use SSE.",
            )

    def _check_embeddings_in_place(self) -> None:
        """A clear error when a hooked word-piece embedding module was replaced: its hook would never fire again."""
        hooked = {lookup.role: lookup.module for lookup in self.lookups if lookup.is_word_piece}
        try:
            current = find_token_embeddings(self.model, decoder="decoder" in hooked)
        except ValueError:
            current = {}
        replaced = [role for role, module in hooked.items() if current.get(role, module) is not module]
        if replaced:
            raise RuntimeError(
                f"sse_hf: the {' and '.join(replaced)} token embedding of {type(self.model).__name__} was replaced after "
                "patch_model (by set_input_embeddings, resize_token_embeddings or PEFT's merge_and_unload), so SSE would "
                "silently stop swapping. "
                "Call unpatch_model(model) and patch_model again after changing the embedding."
            )

    def _check_table(self, lookup: Lookup, module: nn.Module) -> None:
        """A clear error when the hooked embedding was resized after patching (its candidates would be wrong)."""
        rows = declared_rows(module)
        if rows != lookup.rows:
            raise RuntimeError(
                f"sse_hf: the {lookup.role!r} embedding of {type(self.model).__name__} has {rows} rows, but it had "
                f"{lookup.rows} when SSE was attached (resize_token_embeddings after patch_model?). SSE would draw "
                "replacements for the old table. Call unpatch_model(model) (or handle.remove()) and patch_model again "
                "after resizing, with the tokenizer that matches the new size."
            )

    # ----- swap_tokens: the prompt/completion split --------------------------------------------
    def read_scope(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """For swap_tokens 'prompt'/'completion': read which positions may be swapped from this step's labels."""
        self._scope = scope_mask(self.config.swap_tokens, kwargs) if self.active(module) else None
        if self._scope is not None and "prompt_checked" not in self._warned and not torch.compiler.is_compiling():
            self._warned.add("prompt_checked")  # one host read, on the first training step: not one per step
            self._warn_if_no_prompt(kwargs)

    def clear_scope(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._scope = None

    def _warn_if_no_prompt(self, kwargs: dict) -> None:
        """Warn once when labels cannot mark a prompt: a sequence whose first token is already labelled (labels with
        no -100, as TRL's completion_only_loss=False gives them). Called on the first training step only."""
        labels = kwargs.get("labels")
        if isinstance(kwargs.get("completion_mask"), torch.Tensor) or not isinstance(labels, torch.Tensor):
            return
        if labels.ndim >= 2 and bool((labels[:, 0] != IGNORE_INDEX).any()):
            swap_tokens = self.config.swap_tokens
            self._warn_once(
                "no_prompt",
                f"sse_hf: swap_tokens={swap_tokens!r} reads the prompt from labels = -100, but in this step some "
                "sequences have no -100 before their first labelled token (labels with no -100 at all, as TRL's "
                "completion_only_loss=False gives), so SSE cannot tell the prompt from the completion: 'prompt' swaps "
                "nothing there and 'completion' swaps the whole sequence. Mark the prompt with -100 (TRL: "
                "completion_only_loss=True) or pass a completion_mask, or use swap_tokens='all'.",
            )

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, UserWarning, stacklevel=3)
