"""Attach SSE to a model's token-id embedding lookups, and take it off again without a trace.

`patch_model` finds the embedding module(s) that receive token ids (the encoder's and, when asked,
the decoder's), registers a forward pre-hook on each that swaps ids while the module is in training
mode, and returns an `SSEHandle`. Nothing on the model changes but the hooks themselves: no
parameter, buffer or attribute is added, so `state_dict()` and saved checkpoints stay plain.
"""

from __future__ import annotations

import hashlib
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .config import SSEConfig, _check_probability
from .graph import SSEGraph
from .graph_build import prepare_graph
from .samplers import GraphSampler, UniformSampler
from .kernels import swap_labels
from .schedule import adaptive_factor, schedule_factor
from .scope import restrict_swap, scope_mask
from .vocabulary import Vocabulary, resolve_vocabulary

# The roles of word-piece lookups; other hooked tables are named by their module path.
WORD_PIECE_ROLES = ("input", "encoder", "decoder")

# The handle of every patched model, keyed weakly by the unwrapped model: nothing is stored on the model.
_HANDLES: weakref.WeakKeyDictionary[nn.Module, SSEHandle] = weakref.WeakKeyDictionary()


class AlreadyPatchedError(RuntimeError):
    """Raised when `patch_model` meets a model that already has SSE attached."""


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


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model under DDP, DataParallel, FSDP, DeepSpeed, torch.compile, PEFT and SentenceTransformer wrappers."""
    seen = set()
    while id(model) not in seen:
        seen.add(id(model))
        if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):  # torch.compile
            model = model._orig_mod
        elif type(model).__name__ in {
            "DistributedDataParallel",
            "DataParallel",
            "FullyShardedDataParallel",
            "DeepSpeedEngine",
        } and isinstance(getattr(model, "module", None), nn.Module):
            model = model.module
        elif type(model).__module__.startswith("peft.") and hasattr(model, "get_base_model"):
            model = model.get_base_model()
        elif _sentence_transformer_model(model) is not None:
            model = _sentence_transformer_model(model)
    return model


def _sentence_transformer_model(model: nn.Module) -> nn.Module | None:
    """The Transformers model inside a sentence-transformers `SentenceTransformer` (`model[0].auto_model`), else None.

    A SentenceTransformer is an `nn.Sequential` of modules with no `get_input_embeddings()` of its own.
    """
    if not isinstance(model, nn.Sequential) or len(model) == 0 or callable(getattr(model, "get_input_embeddings", None)):
        return None
    inner = getattr(model[0], "auto_model", None)
    return inner if isinstance(inner, nn.Module) else None


def _is_compiled(model: nn.Module) -> bool:
    """True for `torch.compile(model)` wrappers and for models compiled in place with `model.compile()`."""
    return isinstance(getattr(model, "_orig_mod", None), nn.Module) or getattr(model, "_compiled_call_impl", None) is not None


def _refresh_compiled(model: nn.Module, base: nn.Module) -> None:
    """Make compiled code see hooks added or removed after its first call.

    Dynamo does not guard on submodule hooks, so graphs traced before `patch_model` would keep
    running without SSE (and graphs traced while patched would keep swapping after `remove`).
    Resetting dynamo's caches makes the next call trace again, with the hooks as they are now.
    """
    if _is_compiled(model) or _is_compiled(base):
        torch._dynamo.reset()


def _input_embeddings(module: nn.Module) -> nn.Module | None:
    """`module.get_input_embeddings()`, or None where the model has none or does not implement it."""
    getter = getattr(module, "get_input_embeddings", None)
    if getter is None:
        return None
    try:
        embeddings = getter()
    except (NotImplementedError, AttributeError):
        return None
    return embeddings if isinstance(embeddings, nn.Module) else None


def _declared_rows(embedding: nn.Module) -> int | None:
    """The row count an embedding declares (not its weight's shape, which ZeRO-3 partitions to 0)."""
    rows = getattr(embedding, "num_embeddings", None)
    return rows if isinstance(rows, int) and rows > 0 else None


def find_token_embeddings(model: nn.Module, decoder: bool = False) -> dict[str, nn.Module]:
    """The embedding modules that receive token ids, by role: "input", or "encoder" and "decoder".

    Encoder-decoder models in current transformers give the encoder and the decoder their own
    `embed_tokens` module (sharing one weight), so the shared table returned by the model's
    `get_input_embeddings()` may never be called: hook the stacks' own lookups instead.
    """
    config = getattr(model, "config", None)
    get_encoder = getattr(model, "get_encoder", None)
    if getattr(config, "is_encoder_decoder", False) and callable(get_encoder):
        encoder = _input_embeddings(get_encoder()) or getattr(get_encoder(), "embed_tokens", None)
        found = {"encoder": encoder}
        if decoder:
            get_decoder = getattr(model, "get_decoder", None)
            stack = get_decoder() if callable(get_decoder) else None
            found["decoder"] = None if stack is None else _input_embeddings(stack) or getattr(stack, "embed_tokens", None)
    else:
        found = {"input": _input_embeddings(model)}
    missing = [role for role, module in found.items() if module is None]
    if missing:
        raise ValueError(
            f"Cannot find the {' and '.join(missing)} token embedding of {type(model).__name__}: "
            "get_input_embeddings() returned None or is not implemented. SSE needs the embedding module that "
            "receives token ids; pass a model whose get_input_embeddings() returns it (for value-head or reward "
            "wrappers, patch the inner language model)."
        )
    return found


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

    def __init__(self, model: nn.Module, config: SSEConfig, vocabulary: Vocabulary, wrapper=None):
        self.model = model
        self.config = config
        self.vocabulary = vocabulary
        self.enabled = True
        self.factor = 0.0 if config.p_schedule == "adaptive" else 1.0  # the schedule's multiplier of every p
        self.reference_loss: float | None = None  # the adaptive schedule's first observed training loss
        self.num_labels: int | None = None
        self._wrapper = wrapper if wrapper is not None else model
        self._lookups: list[_Lookup] = []
        self._labels = _Lookup("labels", model, sampler=None, base_p=config.label_p)
        self._generators: dict[torch.device, torch.Generator] = {}
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._warned: set[str] = set()
        self._running: set[int] = set()  # ids of the encoder/decoder stacks whose forward is under way
        self._scope: torch.Tensor | None = None  # positions swap_tokens allows in the forward under way
        self._removed = False
        self._step = 0  # the optimizer step the private generators are seeded for (see `set_step`)

    # ----- life cycle -------------------------------------------------------------------------
    def _attach(self) -> None:
        for stack in {id(lookup.stack): lookup.stack for lookup in self._lookups if lookup.stack is not None}.values():
            self._hooks.append(stack.register_forward_pre_hook(_Hook(lambda module, args: self._running.add(id(module)))))
            self._hooks.append(
                stack.register_forward_hook(
                    _Hook(lambda module, args, out: self._running.discard(id(module))), always_call=True
                )
            )
        for lookup in self._lookups:
            lookup.rows = _declared_rows(lookup.module)
            weight = getattr(lookup.module, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.device.type != "meta":
                lookup.sampler.prepare(weight.device)  # build id tables now, outside compiled or timed code
                lookup.counts.setdefault(weight.device, torch.zeros(3, dtype=torch.long, device=weight.device))
            self._hooks.append(
                lookup.module.register_forward_pre_hook(_Hook(self._make_hook(lookup)), with_kwargs=True, prepend=True)
            )
        self._hooks.append(self.model.register_forward_pre_hook(_Hook(self._model_inputs_hook), with_kwargs=True))
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
            _refresh_compiled(self._wrapper, self.model)
        self._removed = True

    @property
    def is_attached(self) -> bool:
        return not self._removed

    def __enter__(self) -> SSEHandle:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "attached" if self.is_attached else "removed"
        roles = ", ".join(f"{role}: p={p:g}" for role, p in self.current_p().items())
        return f"SSEHandle({type(self.model).__name__}, {roles}, {state})"

    # ----- p ----------------------------------------------------------------------------------
    @property
    def p(self) -> float:
        """The current swap probability of the word-piece inputs (the encoder's, for encoder-decoders)."""
        return self._lookups[0].base_p * self.factor

    def current_p(self) -> dict[str, float]:
        """The swap probability in force now, per role (schedule applied); "labels" when label SSE is on."""
        current = {lookup.role: lookup.base_p * self.factor for lookup in self._lookups}
        if self._labels.base_p > 0:
            current["labels"] = self._labels.base_p * self.factor
        return current

    def set_p(self, p: float, decoder_p: float | None = None) -> None:
        """Set the word-piece swap probability (and the decoder's) from the next forward pass on."""
        _check_probability("p", p)
        if decoder_p is not None:
            _check_probability("decoder_p", decoder_p)
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
            self._generators.clear()
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
    def _generator(self, device: torch.device) -> torch.Generator | None:
        """A private generator when `config.seed` is set (seeded per process rank and step), else torch's global one."""
        if self.config.seed is None:
            return None
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
                "patch_model (by set_input_embeddings or resize_token_embeddings), so SSE would silently stop swapping. "
                "Call unpatch_model(model) and patch_model again after changing the embedding."
            )

    def _check_table(self, lookup: _Lookup, module: nn.Module) -> None:
        """A clear error when the hooked embedding was resized after patching (its candidates would be wrong)."""
        rows = _declared_rows(module)
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
            if p <= 0.0 or not self._active(module):
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
            swap = lookup.sampler(input_ids, p, self._generator(input_ids.device))
            if self.config.swap_tokens != "all" and lookup.role in WORD_PIECE_ROLES:
                swap = restrict_swap(swap, self._scope, input_ids, self.config.swap_tokens)
            _count(lookup, swap.eligible, swap.swapped)
            if key is None:
                return (swap.ids, *args[1:]), kwargs
            return args, {**kwargs, key: swap.ids}

        return swap_token_ids

    def _scope_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """For swap_tokens 'prompt'/'completion': read which positions may be swapped from this step's labels."""
        self._scope = scope_mask(self.config.swap_tokens, kwargs) if self._active(module) else None

    def _clear_scope(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._scope = None

    def _model_inputs_hook(self, module: nn.Module, args: tuple, kwargs: dict):
        """Label SSE on `labels`, and a one-time warning when training runs on `inputs_embeds`."""
        if not self._active(module):
            return None
        self._check_embeddings_in_place()
        if "inputs_embeds" not in self._warned and kwargs.get("inputs_embeds") is not None:
            if kwargs.get("input_ids") is None and not args:
                self._warn_once(
                    "inputs_embeds",
                    f"sse_hf: {type(module).__name__} was called with inputs_embeds instead of input_ids, so SSE "
                    "cannot swap token ids and these steps train without SSE. Pass input_ids to use SSE.",
                )
        p = self._labels.base_p * self.factor
        labels = kwargs.get("labels")
        if p <= 0.0 or not isinstance(labels, torch.Tensor) or labels.device.type == "meta":
            return None
        if labels.is_floating_point():
            self._warn_once(
                "float_labels",
                "sse_hf: label_p is set but the labels are floating point (regression or multi-label), so label "
                "SSE is skipped. Use it with single-label classification.",
            )
            return None
        swap = swap_labels(labels, p, self.num_labels, self._generator(labels.device))
        _count(self._labels, swap.eligible, swap.swapped)
        return args, {**kwargs, "labels": swap.ids}

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, UserWarning, stacklevel=3)


def get_handle(model: nn.Module) -> SSEHandle | None:
    """The handle of the SSE attached to `model` (or to the model it wraps), or None."""
    return _HANDLES.get(unwrap_model(model))


def patch_model(
    model: nn.Module,
    config: SSEConfig | None = None,
    *,
    tokenizer=None,
    graph: SSEGraph | Any = None,
    replace: bool = False,
    **overrides: Any,
) -> SSEHandle:
    """Apply SSE to the word-piece inputs of `model` and return the handle that undoes it.

    Works on encoders, decoders and encoder-decoders, under DDP/FSDP/DeepSpeed/accelerate wrappers
    and PEFT. The swap runs only in training steps: while the module is in training mode *and*
    grad mode is on, so evaluation, `predict` and `generate` (all under no_grad) see the original ids.
    Keyword overrides change single fields: `patch_model(m, p=0.05)`. For SSE-Graph pass `graph=` an
    `SSEGraph`, a {token: neighbours} mapping or a scipy matrix (else `config.graph` names a file or "knn").
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"patch_model expects a torch.nn.Module, got {type(model).__name__}.")
    if config is None:
        config = SSEConfig()
    elif not isinstance(config, SSEConfig):
        raise TypeError(f"config must be an SSEConfig, got {type(config).__name__}. Build one with SSEConfig(p=...).")
    if overrides:
        config = config.replace(**overrides)

    base = unwrap_model(model)
    existing = _HANDLES.get(base)
    if existing is not None and not replace:
        raise AlreadyPatchedError(
            f"{type(base).__name__} already has SSE attached ({existing!r}). Call handle.remove() or "
            "unpatch_model(model) first, or pass replace=True to swap in the new settings."
        )

    embeddings = find_token_embeddings(base, decoder=config.decoder_p is not None)
    if config.swap_tokens != "all" and "input" not in embeddings:
        raise ValueError(
            f"SSEConfig.swap_tokens={config.swap_tokens!r} splits causal-LM inputs by their labels, but "
            f"{type(base).__name__} is an encoder-decoder whose labels are decoder targets, not aligned with its "
            "inputs. Use swap_tokens='all' (and decoder_p for the decoder inputs)."
        )
    stacks = _stacks_sharing_an_embedding(base, embeddings)
    model_config = getattr(base, "config", None)
    if model_config is not None and hasattr(model_config, "get_text_config"):
        model_config = model_config.get_text_config()
    declared = [rows for rows in map(_declared_rows, embeddings.values()) if rows is not None]
    vocabulary = resolve_vocabulary(
        model_config,
        tokenizer,
        table_size=min(declared) if declared else None,
        exclude_token_ids=config.exclude_token_ids,
    )
    table_size = max([vocabulary.size, *declared, getattr(model_config, "vocab_size", 0) or 0])
    source = graph if graph is not None else config.graph
    if source is not None:
        knn = isinstance(source, str) and source == "knn"
        sampler = GraphSampler(
            prepare_graph(
                source, table_size=table_size, vocabulary=vocabulary, tokenizer=tokenizer, model=base,
                **({"k": config.graph_k} if knn else {}),
            )
        )
    else:
        sampler = UniformSampler(vocabulary.candidates, table_size)

    handle = SSEHandle(base, config, vocabulary, wrapper=model)
    handle._lookups = [
        _Lookup(role, module, sampler, config.decoder_p if role == "decoder" else config.p, stack=stacks.get(role))
        for role, module in embeddings.items()
    ]
    handle._lookups += _table_lookups(base, config.table_p, embeddings)
    if config.label_p > 0:
        handle.num_labels = _num_classes(base, model_config)

    if existing is not None:
        existing.remove()
    handle._attach()
    _refresh_compiled(model, base)
    _HANDLES[base] = handle
    return handle


def _stacks_sharing_an_embedding(model: nn.Module, embeddings: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """Encoder and decoder stacks, by role, when one embedding module serves both (older transformers' T5).

    Then the hook must tell encoder calls from decoder calls, by which stack's forward is running.
    """
    if "encoder" not in embeddings:
        return {}
    try:
        decoder_embedding = find_token_embeddings(model, decoder=True)["decoder"]
    except ValueError:
        return {}
    if decoder_embedding is not embeddings["encoder"]:
        return {}
    return {"encoder": model.get_encoder(), "decoder": model.get_decoder()}


def _table_lookups(model: nn.Module, table_p: dict[str, float], word_pieces: dict[str, nn.Module]) -> list[_Lookup]:
    """Lookups for the other categorical tables named in `table_p` (by module name or dotted suffix)."""
    lookups = []
    embedding_names = [name for name, module in model.named_modules() if isinstance(module, nn.Embedding)]
    taken = {id(module) for module in word_pieces.values()}
    for key, p in table_p.items():
        matches = [name for name in embedding_names if name == key or name.endswith("." + key)]
        if len(matches) != 1:
            problem = "no" if not matches else f"{len(matches)} ({matches})"
            raise ValueError(
                f"table_p names {key!r}, but {type(model).__name__} has {problem} embedding module with that name. "
                f"Use a unique name or dotted suffix from: {embedding_names}."
            )
        module = model.get_submodule(matches[0])
        if id(module) in taken:
            raise ValueError(
                f"table_p names {matches[0]!r}, the word-piece embedding: set its probability with p instead."
            )
        taken.add(id(module))
        rows = module.num_embeddings
        protected = {module.padding_idx} if module.padding_idx is not None else set()
        candidates = [i for i in range(rows) if i not in protected]
        if len(candidates) < 2:
            raise ValueError(f"table_p: {matches[0]!r} has {rows} row(s); SSE needs at least 2 to swap between.")
        lookups.append(_Lookup(matches[0], module, UniformSampler(candidates, rows), p))
    return lookups


def _num_classes(model: nn.Module, model_config) -> int:
    """How many classes label SSE draws from; a clear error for regression and non-classifiers."""
    name = type(model).__name__
    num_labels = getattr(model_config, "num_labels", None)
    if not ("ForSequenceClassification" in name or "ForTokenClassification" in name):
        raise ValueError(
            f"label_p is set, but {name} is not a sequence- or token-classification model: label SSE swaps class "
            "labels only. Set label_p=0 for this model."
        )
    if getattr(model_config, "problem_type", None) == "regression" or num_labels == 1:
        raise ValueError(
            f"label_p is set, but {name} is a regression model (num_labels={num_labels}): labels are real values, "
            "not classes. Set label_p=0 for regression tasks such as STS-B."
        )
    if getattr(model_config, "problem_type", None) == "multi_label_classification":
        raise ValueError("label_p is set, but the model does multi-label classification; label SSE needs one class.")
    return int(num_labels)


def unpatch_model(model: nn.Module) -> bool:
    """Remove whatever sse_hf attached to `model`. Returns True if something was removed."""
    handle = get_handle(model)
    if handle is None:
        return False
    handle.remove()
    return True
