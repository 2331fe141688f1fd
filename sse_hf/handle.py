"""`SSEHandle`: the hooks SSE attaches to one model, what they count, and how p is set while they run.

A forward pre-hook on each token-id embedding swaps ids in training steps; one on the model swaps labels
(label SSE) and reads which tokens `swap_tokens` allows. The handle owns its hooks: `remove()` takes them
all off, and copies or pickles of the model carry inert stand-ins instead. `get_handle` finds the handle
of a patched model (kept in a weak registry, so nothing is stored on the model).
"""

from __future__ import annotations

import hashlib
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .config import SSEConfig
from .discovery import declared_rows, find_token_embeddings, refresh_compiled, unwrap_model
from .sampling import swap_labels
from .samplers import GraphSampler, UniformSampler
from .schedule import adaptive_factor, schedule_factor
from .swap_tokens import IGNORE_INDEX, restrict_swap, scope_mask
from .validation import check_probability
from .vocabulary import Vocabulary

# The roles of word-piece lookups; other hooked tables are named by their module path.
WORD_PIECE_ROLES = ("input", "encoder", "decoder")

# The handle of every patched model, keyed weakly by the unwrapped model: nothing is stored on the model.
_HANDLES: weakref.WeakKeyDictionary[nn.Module, SSEHandle] = weakref.WeakKeyDictionary()


# The id dtypes an embedding lookup accepts; ids of any other dtype pass through for the embedding to reject.
ID_DTYPES = (torch.long, torch.int32)


class _Hook:
    """A hook SSE registers: `copy.deepcopy`, `pickle` and `torch.save` of the model get an inert stand-in.

    So a copy or a reloaded model carries no patch (patch it again if it should swap) and never shares counts.
    """

    def __init__(self, function):
        self.function = function

    def __call__(self, *args):
        return self.function(*args)

    def __deepcopy__(self, memo) -> _DetachedHook:
        return _DetachedHook()

    def __reduce__(self):
        return (_DetachedHook, ())


class _DetachedHook:
    """Stands in for an SSE hook in a copied or unpickled model: does nothing and removes itself on first call."""

    def __call__(self, module: nn.Module, *rest: Any) -> None:
        for name in ("_forward_pre_hooks", "_forward_hooks"):
            hooks = getattr(module, name, {})
            for key in [key for key, hook in hooks.items() if hook is self]:
                del hooks[key]
                for extra in ("_forward_pre_hooks_with_kwargs", "_forward_hooks_with_kwargs", "_forward_hooks_always_called"):
                    getattr(module, extra, {}).pop(key, None)
        return None


def _process_rank() -> int:
    """This process's rank under torch.distributed, else 0."""
    return torch.distributed.get_rank() if torch.distributed.is_available() and torch.distributed.is_initialized() else 0


def _stream_seed(seed: int, rank: int, step: int) -> int:
    """The private generator's seed for one process and optimizer step: a resumed run redraws exactly, ranks differ."""
    digest = hashlib.blake2b(f"sse_hf/{seed}/{rank}/{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


@dataclass
class _Lookup:
    """One hooked embedding: its role, how it swaps, its configured p and what it has counted."""

    role: str
    module: nn.Module
    sampler: UniformSampler | GraphSampler
    base_p: float
    # Set when one embedding module serves both encoder and decoder: swap only while this stack runs.
    stack: nn.Module | None = None
    rows: int | None = None  # the declared row count at patch time: a resize afterwards is a clear error
    # device -> [seen, eligible, swapped]; tensors, not Python ints, so compiled code never recompiles to count
    counts: dict[torch.device, torch.Tensor] = field(default_factory=dict)


def _count(lookup, eligible: torch.Tensor, swapped: torch.Tensor) -> None:
    """Add a batch to a lookup's counts, on the device: no host sync."""
    step = torch.stack([eligible.new_full((), eligible.numel(), dtype=torch.long), eligible.sum(), swapped.sum()])
    counts = lookup.counts.get(step.device)
    if counts is None:
        lookup.counts[step.device] = step
    else:
        counts += step


class SSEHandle:
    """What `patch_model` returns: removes the hooks, reports what the swaps did, changes p.

    Use `handle.remove()`, or `with patch_model(...) as handle:` to remove on exit even if
    training raises. Counts are kept on the model's device and only read when you ask.
    """

    def __init__(
        self,
        model: nn.Module,
        config: SSEConfig,
        vocabulary: Vocabulary,
        lookups: list[_Lookup],
        *,
        num_labels: int | None = None,
        wrapper: nn.Module | None = None,
    ):
        """A handle over `lookups` (word pieces first) of `model`, not attached yet: `patch_model` calls `attach()`."""
        self.model = model
        self.config = config
        self.vocabulary = vocabulary
        self.enabled = True
        self.factor = 0.0 if config.p_schedule == "adaptive" else 1.0  # the schedule's multiplier of every p
        self.reference_loss: float | None = None  # the adaptive schedule's first observed training loss
        self.num_labels = num_labels  # label SSE's class count (label_p > 0 only)
        self._wrapper = wrapper if wrapper is not None else model
        self._lookups = list(lookups)
        self._labels = _Lookup("labels", model, sampler=None, base_p=config.label_p)
        self._generators: dict[torch.device, torch.Generator] = {}
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._warned: set[str] = set()
        self._running: set[int] = set()  # ids of the encoder/decoder stacks whose forward is under way
        self._scope: torch.Tensor | None = None  # positions swap_tokens allows in the forward under way
        # A hooked word-piece lookup ran since the model's last forward ended: PEFT's prompt tuning looks the ids up
        # itself and then calls the model with inputs_embeds, which SSE has swapped already.
        self._looked_up = False
        self._removed = False
        self._step = 0  # the optimizer step the private generators are seeded for (see `set_step`)

    # ----- life cycle -------------------------------------------------------------------------
    def attach(self) -> None:
        """Register the hooks (once); `patch_model` does this after taking off any patch it replaces."""
        if self._hooks or self._removed:
            return
        for stack in {id(lookup.stack): lookup.stack for lookup in self._lookups if lookup.stack is not None}.values():
            self._hooks.append(stack.register_forward_pre_hook(_Hook(lambda module, args: self._running.add(id(module)))))
            self._hooks.append(
                stack.register_forward_hook(
                    _Hook(lambda module, args, out: self._running.discard(id(module))), always_call=True
                )
            )
        for lookup in self._lookups:
            lookup.rows = declared_rows(lookup.module)
            weight = getattr(lookup.module, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.device.type != "meta":
                lookup.sampler.prepare(weight.device)  # build id tables now, outside compiled or timed code
                lookup.counts.setdefault(weight.device, torch.zeros(3, dtype=torch.long, device=weight.device))
                self._generator(weight.device)  # the private generator too (seed only)
            self._hooks.append(
                lookup.module.register_forward_pre_hook(_Hook(self._make_hook(lookup)), with_kwargs=True, prepend=True)
            )
        self._hooks.append(self.model.register_forward_pre_hook(_Hook(self._model_inputs_hook), with_kwargs=True))
        self._hooks.append(self.model.register_forward_hook(_Hook(self._end_forward), always_call=True))
        for holder in self._embedding_holders():
            self._hooks.append(holder.register_forward_pre_hook(_Hook(self._holder_inputs_hook), with_kwargs=True))
        if self.config.swap_tokens != "all":
            self._hooks.append(
                self.model.register_forward_pre_hook(_Hook(self._scope_hook), with_kwargs=True, prepend=True)
            )
            self._hooks.append(self.model.register_forward_hook(_Hook(self._clear_scope), always_call=True))

    def remove(self) -> None:
        """Detach every hook this handle added. Safe to call twice."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        if _HANDLES.get(self.model) is self:
            del _HANDLES[self.model]
        if not self._removed:
            refresh_compiled(self._wrapper, self.model)
        self._removed = True

    @property
    def is_attached(self) -> bool:
        """True from `attach()` until `remove()`."""
        return bool(self._hooks)

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

    # ----- p ----------------------------------------------------------------------------------
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
            elif lookup.role in WORD_PIECE_ROLES:
                lookup.base_p = float(p)

    def set_step(self, step: int, total_steps: int) -> float:
        """Apply the configured p schedule at optimizer step `step` of `total_steps`; returns the factor.

        The 'adaptive' schedule ignores the step (it follows `observe_loss`). With `config.seed`, each new step also
        reseeds the private generators from (seed, rank, step), so a run resumed from a checkpoint draws exactly the
        swaps the uninterrupted run drew.
        """
        if self.config.p_schedule != "adaptive":
            self.factor = schedule_factor(self.config.p_schedule, step, total_steps, self.config.p_warmup_ratio)
        if step != self._step:
            self._step = step
            self._seed_generators()
        return self.factor

    def observe_loss(self, loss: float) -> float:
        """Feed the training loss to the 'adaptive' schedule (the first value is its reference); returns the factor.

        `SSECallback` does this at every Trainer log; in a plain training loop call it every few steps with the
        mean training loss since the previous call. Other schedules ignore it.
        """
        if self.config.p_schedule != "adaptive":
            return self.factor
        loss = float(loss)
        if self.reference_loss is None:
            if not (loss > 0 and loss != float("inf")):
                return self.factor  # no usable reference yet (nan, inf or 0): keep p where it is
            self.reference_loss = loss
        self.factor = adaptive_factor(loss, self.reference_loss, self.config.adaptive_start, self.config.adaptive_full)
        return self.factor

    # ----- statistics -------------------------------------------------------------------------
    def stats(self) -> dict[str, dict[str, float]]:
        """Per role: tokens seen in training, tokens that could be swapped, tokens swapped, and the rate.

        Reading them synchronises with the device once; call it when you log, not every step.
        """
        lookups = [*self._lookups, self._labels] if self._labels.base_p > 0 else self._lookups
        report = {}
        for lookup in lookups:
            seen = eligible = swapped = 0
            for counts in lookup.counts.values():
                seen_here, eligible_here, swapped_here = counts.tolist()
                seen += seen_here
                eligible += eligible_here
                swapped += swapped_here
            report[lookup.role] = {
                "tokens_seen": seen,
                "tokens_eligible": eligible,
                "tokens_swapped": swapped,
                "swap_rate": swapped / eligible if eligible else 0.0,
            }
        return report

    def _word_piece_total(self, key: str) -> int:
        return sum(stats[key] for role, stats in self.stats().items() if role in WORD_PIECE_ROLES)

    @property
    def tokens_seen(self) -> int:
        """Word-piece ids that went through a hooked lookup in a training step."""
        return self._word_piece_total("tokens_seen")

    @property
    def tokens_eligible(self) -> int:
        """Of those, the ones SSE was allowed to swap (not special, padding or reserved)."""
        return self._word_piece_total("tokens_eligible")

    @property
    def tokens_swapped(self) -> int:
        """Of those, the ones it did swap."""
        return self._word_piece_total("tokens_swapped")

    @property
    def swap_rate(self) -> float:
        """Realised word-piece swap rate: tokens swapped / tokens eligible (close to p)."""
        eligible = self.tokens_eligible
        return self.tokens_swapped / eligible if eligible else 0.0

    def reset_stats(self) -> None:
        """Zero every count."""
        for lookup in [*self._lookups, self._labels]:
            lookup.counts.clear()

    # ----- the hooks --------------------------------------------------------------------------
    def _seed_generators(self) -> None:
        """Reseed every private generator for the current step (see `set_step`)."""
        for generator in self._generators.values():
            generator.manual_seed(_stream_seed(self.config.seed, _process_rank(), self._step))

    def _generator(self, device: torch.device) -> torch.Generator | None:
        """A private generator when `config.seed` is set (seeded per process rank and step), else torch's global one.

        `attach` makes the one for the embeddings' device, outside the hooks, so that `torch.compile(fullgraph=True)`
        never has to create one inside its graph; one for a device the model moved to later is made here.
        """
        if self.config.seed is None:
            return None
        if torch.compiler.is_compiling():
            raise RuntimeError(
                "sse_hf: SSEConfig.seed draws the swaps from a private torch.Generator, which torch.compile cannot "
                "trace: with fullgraph=True the graph cannot break there. Use seed=None (the swaps then follow "
                "torch's global generator, which transformers.set_seed seeds and Trainer restores on resume) or "
                "compile without fullgraph=True."
            )
        generator = self._generators.get(device)
        if generator is None:
            generator = torch.Generator(device=device)
            generator.manual_seed(_stream_seed(self.config.seed, _process_rank(), self._step))
            self._generators[device] = generator
        return generator

    def _check_embeddings_in_place(self) -> None:
        """A clear error when a hooked word-piece embedding module was replaced: its hook would never fire again."""
        hooked = {lookup.role: lookup.module for lookup in self._lookups if lookup.role in WORD_PIECE_ROLES}
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

    def _check_table(self, lookup: _Lookup, module: nn.Module) -> None:
        """A clear error when the hooked embedding was resized after patching (its candidates would be wrong)."""
        rows = declared_rows(module)
        if rows != lookup.rows:
            raise RuntimeError(
                f"sse_hf: the {lookup.role!r} embedding of {type(self.model).__name__} has {rows} rows, but it had "
                f"{lookup.rows} when SSE was attached (resize_token_embeddings after patch_model?). SSE would draw "
                "replacements for the old table. Call unpatch_model(model) (or handle.remove()) and patch_model again "
                "after resizing, with the tokenizer that matches the new size."
            )

    def _active(self, module: nn.Module) -> bool:
        """Only in training steps: eval loops, predict and generate run in eval mode or without grad."""
        return module.training and self.enabled and torch.is_grad_enabled()

    def _make_hook(self, lookup: _Lookup):
        def swap_token_ids(module: nn.Module, args: tuple, kwargs: dict):
            p = lookup.base_p * self.factor
            if not self._active(module):
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
            swap = lookup.sampler(input_ids, p, self._generator(input_ids.device) if p > 0 else None)
            if self.config.swap_tokens != "all" and lookup.role in WORD_PIECE_ROLES:
                swap = restrict_swap(swap, self._scope, input_ids, self.config.swap_tokens)
            _count(lookup, swap.eligible, swap.swapped)
            if lookup.role in WORD_PIECE_ROLES:
                self._looked_up = True
            if p <= 0.0:
                return None
            if key is None:
                return (swap.ids, *args[1:]), kwargs
            return args, {**kwargs, key: swap.ids}

        return swap_token_ids

    def _scope_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """For swap_tokens 'prompt'/'completion': read which positions may be swapped from this step's labels."""
        self._scope = scope_mask(self.config.swap_tokens, kwargs) if self._active(module) else None
        if self._scope is not None and "prompt_checked" not in self._warned and not torch.compiler.is_compiling():
            self._warned.add("prompt_checked")  # one host read, on the first training step: not one per step
            self._warn_if_no_prompt(kwargs)

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

    def _end_forward(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._looked_up = False

    def _clear_scope(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._scope = None

    def _embedding_holders(self) -> list[nn.Module]:
        """The modules that hold a word-piece embedding as a child (BertEmbeddings, T5's stacks), other than the model.

        They run however the model is called, also where a library calls `model.forward()` directly and so skips
        the model-level hook (sentence-transformers does): their hook keeps the checks of `_model_inputs_hook`.
        """
        embeddings = {id(lookup.module) for lookup in self._lookups if lookup.role in WORD_PIECE_ROLES}
        return [
            module for module in self.model.modules()
            if module is not self.model and any(id(child) in embeddings for child in module.children())
        ]  # fmt: skip

    def _holder_inputs_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """Per training forward of an embedding's holder: the embedding is still in place, and input ids are used."""
        if not self._active(module):
            return None
        self._check_embeddings_in_place()
        self._warn_inputs_embeds(module, args, kwargs)
        return None

    def _warn_inputs_embeds(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """A one-time warning when a training step runs on `inputs_embeds`: SSE has no token ids to swap then."""
        if "inputs_embeds" not in self._warned and kwargs.get("inputs_embeds") is not None:
            if kwargs.get("input_ids") is None and not args and not self._looked_up:
                self._warn_once(
                    "inputs_embeds",
                    f"sse_hf: {type(module).__name__} was called with inputs_embeds instead of input_ids, so SSE "
                    "cannot swap token ids and these steps train without SSE. Pass input_ids to use SSE.",
                )

    def _model_inputs_hook(self, module: nn.Module, args: tuple, kwargs: dict):
        """Per training forward: check the hooked embeddings are still the model's, label SSE on `labels`, and a
        one-time warning when training runs on `inputs_embeds`. Python attribute lookups only: no host sync."""
        if not self._active(module):
            return None
        self._check_embeddings_in_place()
        self._warn_inputs_embeds(module, args, kwargs)
        p = self._labels.base_p * self.factor
        labels = kwargs.get("labels")
        if self._labels.base_p > 0 and labels is None and "no_labels" not in self._warned:
            self._warn_once(
                "no_labels",
                f"sse_hf: label_p={self._labels.base_p} is set, but this training forward pass got no labels, so no "
                "label is swapped (a loss computed outside the model, e.g. Trainer's compute_loss_func or "
                "label_smoothing_factor, takes them out first). Pass labels to the model, or set label_p=0.",
            )
        if self._labels.base_p <= 0.0 or not isinstance(labels, torch.Tensor) or labels.device.type == "meta":
            return None
        if labels.is_floating_point():
            self._warn_once(
                "float_labels",
                "sse_hf: label_p is set but the labels are floating point (regression or multi-label), so label "
                "SSE is skipped. Use it with single-label classification.",
            )
            return None
        swap = swap_labels(labels, p, self.num_labels, self._generator(labels.device) if p > 0 else None)
        _count(self._labels, swap.eligible, swap.swapped)
        return (args, {**kwargs, "labels": swap.ids}) if p > 0 else None

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, UserWarning, stacklevel=3)


def get_handle(model: nn.Module) -> SSEHandle | None:
    """The handle of the SSE attached to `model` (or to the model it wraps), or None."""
    return _HANDLES.get(unwrap_model(model))
