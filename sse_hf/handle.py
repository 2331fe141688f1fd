"""`SSEHandle`: the life cycle of SSE on one model, from `attach` to `remove`, and the registry `get_handle` reads.

`attach` registers the hooks (`sse_hf.hooks`) and the handle; `remove` takes both off. The registry is weak and
keyed by the unwrapped model, so nothing is stored on the model. Compiled code is told of both changes.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from .config import SSEConfig
from .discovery import declared_rows, unwrap_model
from .hooks import SwapHooks
from .inert_hooks import CopyInertHook
from .lookups import WORD_PIECE_ROLES, LabelSwap, Lookup
from .schedule import ScheduleState
from .statistics import stats_of, word_piece_totals
from .streams import RandomStreams
from .validation import check_probability
from .vocabulary import Vocabulary

# The handle of every patched model, keyed weakly by the unwrapped model: nothing is stored on the model.
# Only `SSEHandle.attach` adds to it and only `SSEHandle.remove` takes from it.
_HANDLES: weakref.WeakKeyDictionary[nn.Module, SSEHandle] = weakref.WeakKeyDictionary()


def get_handle(model: nn.Module) -> SSEHandle | None:
    """The handle of the SSE attached to `model` (or to the model it wraps), or None."""
    return _HANDLES.get(unwrap_model(model))


def _is_compiled(model: nn.Module) -> bool:
    """True for `torch.compile(model)` wrappers and for models compiled in place with `model.compile()`."""
    return (
        isinstance(getattr(model, "_orig_mod", None), nn.Module)
        or getattr(model, "_compiled_call_impl", None) is not None
    )


def _refresh_compiled(model: nn.Module, base: nn.Module) -> None:
    """Make compiled code see hooks added or removed after its first call.

    Dynamo does not guard on submodule hooks, so graphs traced before `patch_model` would keep
    running without SSE (and graphs traced while patched would keep swapping after `remove`).
    Resetting dynamo's caches makes the next call trace again, with the hooks as they are now.
    """
    if _is_compiled(model) or _is_compiled(base):
        torch._dynamo.reset()


class SSEHandle:
    """What `patch_model` returns: removes the hooks, reports what the swaps did, changes p.

    Use `handle.remove()`, or `with patch_model(...) as handle:` to remove on exit even if
    training raises; `with handle.disabled():` turns the swaps off for a while. Counts are kept on the
    model's device and only read when you ask.
    """

    def __init__(
        self,
        model: nn.Module,
        config: SSEConfig,
        vocabulary: Vocabulary,
        lookups: list[Lookup],
        *,
        num_labels: int | None = None,
        wrapper: nn.Module | None = None,
    ):
        """A handle over `lookups` (word pieces first) of `model`, not attached yet: `patch_model` calls `attach()`."""
        self.model = model
        self.config = config
        self.vocabulary = vocabulary
        self._wrapper = wrapper if wrapper is not None else model
        self._lookups = list(lookups)
        self._labels = LabelSwap(config.label_p, num_labels)
        self._schedule = ScheduleState(config)
        self._streams = RandomStreams(config.seed)
        self._bodies = SwapHooks(model, config, self._lookups, self._labels, self._schedule, self._streams)
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._removed = False

    # ----- life cycle -------------------------------------------------------------------------
    def attach(self) -> None:
        """Register the hooks and the handle (once); `patch_model` does this after taking off any patch it replaces."""
        if self._hooks or self._removed:
            return
        bodies = self._bodies
        for stack in {id(lookup.stack): lookup.stack for lookup in self._lookups if lookup.stack is not None}.values():
            self._hooks.append(stack.register_forward_pre_hook(CopyInertHook(bodies.stack_entered)))
            self._hooks.append(stack.register_forward_hook(CopyInertHook(bodies.stack_left), always_call=True))
        for lookup in self._lookups:
            lookup.rows = declared_rows(lookup.module)
            weight = getattr(lookup.module, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.device.type != "meta":
                lookup.sampler.prepare(weight.device)  # build id tables now, outside compiled or timed code
                lookup.counts.prepare(weight.device)
                self._streams.generator(weight.device)  # the private generator too (seed only)
            hook = CopyInertHook(bodies.swap_token_ids(lookup))
            self._hooks.append(lookup.module.register_forward_pre_hook(hook, with_kwargs=True, prepend=True))
        self._hooks.append(self.model.register_forward_pre_hook(CopyInertHook(bodies.check_inputs), with_kwargs=True))
        if self._labels.base_p > 0:
            hook = CopyInertHook(bodies.swap_labels)
            self._hooks.append(self.model.register_forward_pre_hook(hook, with_kwargs=True))
        self._hooks.append(self.model.register_forward_hook(CopyInertHook(bodies.forward_ended), always_call=True))
        for holder in self._embedding_holders():
            self._hooks.append(holder.register_forward_pre_hook(CopyInertHook(bodies.check_inputs), with_kwargs=True))
        if self.config.swap_tokens != "all":
            hook = CopyInertHook(bodies.read_scope)
            self._hooks.append(self.model.register_forward_pre_hook(hook, with_kwargs=True, prepend=True))
            self._hooks.append(self.model.register_forward_hook(CopyInertHook(bodies.clear_scope), always_call=True))
        _HANDLES[self.model] = self
        _refresh_compiled(self._wrapper, self.model)

    def _embedding_holders(self) -> list[nn.Module]:
        """The modules that hold a word-piece embedding as a child (BertEmbeddings, T5's stacks), other than the model.

        They run however the model is called, also where a library calls `model.forward()` directly and so skips
        the model-level hooks (sentence-transformers does): their hook keeps the checks of `SwapHooks.check_inputs`.
        """
        embeddings = {id(lookup.module) for lookup in self._lookups if lookup.is_word_piece}
        return [
            module
            for module in self.model.modules()
            if module is not self.model and any(id(child) in embeddings for child in module.children())
        ]

    def remove(self) -> None:
        """Detach every hook this handle added and unregister it. Safe to call twice."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        if _HANDLES.get(self.model) is self:
            del _HANDLES[self.model]
        if not self._removed:
            _refresh_compiled(self._wrapper, self.model)
        self._removed = True

    @property
    def is_attached(self) -> bool:
        """True from `attach()` until `remove()`."""
        return bool(self._hooks)

    @contextlib.contextmanager
    def disabled(self) -> Iterator[SSEHandle]:
        """Turn the swaps off inside the `with` block and back to what they were on exit (like peft's
        `disable_adapter()`): `with handle.disabled(): model(**batch)` trains that step without SSE."""
        previous = self._bodies.enabled
        self._bodies.enabled = False
        try:
            yield self
        finally:
            self._bodies.enabled = previous

    def __enter__(self) -> SSEHandle:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "attached" if self.is_attached else "removed"
        roles = ", ".join(f"{role}: p={p:g}" for role, p in self.effective_p_by_role().items())
        return f"SSEHandle({type(self.model).__name__}, {roles}, {state})"

    @property
    def graph(self):
        """The `SSEGraph` the word-piece lookups sample from (SSE-Graph), or None for SSE-SE."""
        return getattr(self._lookups[0].sampler, "graph", None) if self._lookups else None

    @property
    def num_labels(self) -> int | None:
        """Label SSE's class count (label_p > 0 only)."""
        return self._labels.num_classes

    # ----- p: base p per table times the schedule's factor ------------------------------------
    @property
    def factor(self) -> float:
        """The schedule's multiplier of every base p, in [0, 1]."""
        return self._schedule.factor

    @factor.setter
    def factor(self, value: float) -> None:
        self._schedule.factor = value

    @property
    def reference_loss(self) -> float | None:
        """The adaptive schedule's first observed training loss (None before one is seen)."""
        return self._schedule.reference_loss

    @reference_loss.setter
    def reference_loss(self, value: float | None) -> None:
        self._schedule.reference_loss = value

    @property
    def effective_p(self) -> float:
        """The swap probability in force now for the word-piece inputs (the encoder's, for encoder-decoders): the
        base p (`config.p`, or what `set_base_p` set) times the schedule's factor."""
        return self._lookups[0].base_p * self.factor

    def effective_p_by_role(self) -> dict[str, float]:
        """The swap probability in force now, per role (schedule applied); "labels" when label SSE is on."""
        current = {lookup.role: lookup.base_p * self.factor for lookup in self._lookups}
        if self._labels.base_p > 0:
            current["labels"] = self._labels.base_p * self.factor
        return current

    def set_base_p(self, p: float, decoder_p: float | None = None) -> None:
        """Set the base word-piece swap probability (and the decoder's) from the next forward pass on; the schedule's
        factor still multiplies it (see `effective_p`). `config` keeps the values it was patched with."""
        p = check_probability("SSEConfig.p (set_base_p)", p)
        if decoder_p is not None:
            decoder_p = check_probability("SSEConfig.decoder_p (set_base_p)", decoder_p)
        for lookup in self._lookups:
            if lookup.role == "decoder":
                if decoder_p is not None:
                    lookup.base_p = float(decoder_p)
            elif lookup.is_word_piece:
                lookup.base_p = float(p)

    def set_step(self, step: int, total_steps: int) -> float:
        """Apply the configured p schedule at optimizer step `step` of `total_steps`; returns the factor.

        The 'adaptive' schedule ignores the step (it follows `observe_loss`). With `config.seed`, each new step also
        reseeds the private generators from (seed, rank, step), so a run resumed from a checkpoint draws exactly the
        swaps the uninterrupted run drew.
        """
        factor = self._schedule.set_step(step, total_steps)
        self._streams.set_step(step)
        return factor

    def observe_loss(self, loss: float) -> float:
        """Feed the training loss to the 'adaptive' schedule (the first value is its reference); returns the factor.

        `SSECallback` does this at every Trainer log; in a plain training loop call it every few steps with the
        mean training loss since the previous call. Other schedules ignore it.
        """
        return self._schedule.observe_loss(loss)

    # ----- statistics -------------------------------------------------------------------------
    def counts(self) -> dict[str, list[int]]:
        """Per role, [tokens seen, eligible, swapped] in training so far (this process); "labels" when label SSE is on.

        Reading them synchronises with the device once; call it when you log, not every step.
        """
        records = [*self._lookups, self._labels] if self._labels.base_p > 0 else self._lookups
        return {record.role: record.counts.totals() for record in records}

    def stats(self) -> dict[str, dict[str, float]]:
        """Per role: tokens seen in training, tokens that could be swapped, tokens swapped, and the rate.

        Reading them synchronises with the device once; call it when you log, not every step.
        """
        return stats_of(self.counts())

    @property
    def tokens_seen(self) -> int:
        """Word-piece ids that went through a hooked lookup in a training step."""
        return word_piece_totals(self.counts(), WORD_PIECE_ROLES)[0]

    @property
    def tokens_eligible(self) -> int:
        """Of those, the ones SSE was allowed to swap (not special, padding or reserved)."""
        return word_piece_totals(self.counts(), WORD_PIECE_ROLES)[1]

    @property
    def tokens_swapped(self) -> int:
        """Of those, the ones it did swap."""
        return word_piece_totals(self.counts(), WORD_PIECE_ROLES)[2]

    @property
    def swap_rate(self) -> float:
        """Realised word-piece swap rate: tokens swapped / tokens eligible (close to p)."""
        _, eligible, swapped = word_piece_totals(self.counts(), WORD_PIECE_ROLES)
        return swapped / eligible if eligible else 0.0

    def reset_stats(self) -> None:
        """Zero every count."""
        for record in [*self._lookups, self._labels]:
            record.counts.clear()
