"""Attach SSE to a model's token-id embedding lookups, and take it off again without a trace.

`patch_model` finds the embedding module(s) that receive token ids (the encoder's and, when asked,
the decoder's), registers a forward pre-hook on each that swaps ids while the module is in training
mode, and returns an `SSEHandle`. Nothing on the model changes but the hooks themselves: no
parameter, buffer or attribute is added, so `state_dict()` and saved checkpoints stay plain.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .config import SSEConfig, _check_probability
from .sampling import candidate_positions, swap_uniform
from .vocabulary import Vocabulary, resolve_vocabulary

# The handle of every patched model, keyed weakly by the unwrapped model: nothing is stored on the model.
_HANDLES: weakref.WeakKeyDictionary[nn.Module, SSEHandle] = weakref.WeakKeyDictionary()


class AlreadyPatchedError(RuntimeError):
    """Raised when `patch_model` meets a model that already has SSE attached."""


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model under DDP, DataParallel, FSDP, DeepSpeed, torch.compile and PEFT wrappers."""
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
    return model


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
    """One hooked embedding: its role, its swap probability and what it has counted so far."""

    role: str
    module: nn.Module
    p: float
    tokens_seen: int = 0
    counts: dict[torch.device, torch.Tensor] = field(default_factory=dict)  # device -> [eligible, swapped]


class SSEHandle:
    """What `patch_model` returns: removes the hooks, reports what the swaps did, changes p.

    Use `handle.remove()`, or `with patch_model(...) as handle:` to remove on exit even if
    training raises. Counts are kept on the model's device and only read when you ask.
    """

    def __init__(
        self, model: nn.Module, config: SSEConfig, vocabulary: Vocabulary, lookups: list[_Lookup], wrapper=None
    ):
        self.model = model
        self._wrapper = wrapper if wrapper is not None else model
        self.config = config
        self.vocabulary = vocabulary
        self.enabled = True
        self._lookups = lookups
        self._tables: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._generators: dict[torch.device, torch.Generator] = {}
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._warned_inputs_embeds = False
        self._removed = False
        self._table_size = vocabulary.size

    # ----- life cycle -------------------------------------------------------------------------
    def _attach(self) -> None:
        for lookup in self._lookups:
            self._hooks.append(
                lookup.module.register_forward_pre_hook(self._make_hook(lookup), with_kwargs=True, prepend=True)
            )
        self._hooks.append(self.model.register_forward_pre_hook(self._check_inputs_embeds, with_kwargs=True))

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
        roles = ", ".join(f"{lookup.role}: p={lookup.p}" for lookup in self._lookups)
        return f"SSEHandle({type(self.model).__name__}, {roles}, {state})"

    # ----- p ----------------------------------------------------------------------------------
    @property
    def p(self) -> float:
        """The current swap probability of the word-piece inputs (the encoder's, for encoder-decoders)."""
        return self._lookups[0].p

    def set_p(self, p: float, decoder_p: float | None = None) -> None:
        """Change the swap probability from the next forward pass on (for schedules and ablations)."""
        _check_probability("p", p)
        if decoder_p is not None:
            _check_probability("decoder_p", decoder_p)
        for lookup in self._lookups:
            if lookup.role == "decoder":
                if decoder_p is not None:
                    lookup.p = float(decoder_p)
            else:
                lookup.p = float(p)

    # ----- statistics -------------------------------------------------------------------------
    def stats(self) -> dict[str, dict[str, float]]:
        """Per role: tokens seen in training, tokens that could be swapped, tokens swapped, and the rate.

        Reading them synchronises with the device once; call it when you log, not every step.
        """
        report = {}
        for lookup in self._lookups:
            eligible = swapped = 0
            for counts in lookup.counts.values():
                eligible_here, swapped_here = counts.tolist()
                eligible += eligible_here
                swapped += swapped_here
            report[lookup.role] = {
                "tokens_seen": lookup.tokens_seen,
                "tokens_eligible": eligible,
                "tokens_swapped": swapped,
                "swap_rate": swapped / eligible if eligible else 0.0,
            }
        return report

    def _total(self, key: str) -> int:
        return sum(role[key] for role in self.stats().values())

    @property
    def tokens_seen(self) -> int:
        """Token ids that went through a hooked lookup in training mode."""
        return sum(lookup.tokens_seen for lookup in self._lookups)

    @property
    def tokens_eligible(self) -> int:
        """Of those, the ones SSE was allowed to swap (not special, padding or reserved)."""
        return self._total("tokens_eligible")

    @property
    def tokens_swapped(self) -> int:
        """Of those, the ones it did swap."""
        return self._total("tokens_swapped")

    @property
    def swap_rate(self) -> float:
        """Realised swap rate: tokens swapped / tokens eligible (close to p)."""
        eligible = self.tokens_eligible
        return self.tokens_swapped / eligible if eligible else 0.0

    def reset_stats(self) -> None:
        """Zero every count."""
        for lookup in self._lookups:
            lookup.tokens_seen = 0
            lookup.counts.clear()

    # ----- the hooks --------------------------------------------------------------------------
    def _device_tables(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidates and their positions on `device`, built once per device."""
        tables = self._tables.get(device)
        if tables is None:
            candidates = torch.tensor(self.vocabulary.candidates, dtype=torch.long, device=device)
            tables = (candidates, candidate_positions(candidates, self._table_size))
            self._tables[device] = tables
        return tables

    def _generator(self, device: torch.device) -> torch.Generator | None:
        """A private generator when `config.seed` is set (offset by the process rank), else torch's global one."""
        if self.config.seed is None:
            return None
        generator = self._generators.get(device)
        if generator is None:
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            generator = torch.Generator(device=device)
            generator.manual_seed(self.config.seed + rank)
            self._generators[device] = generator
        return generator

    def _make_hook(self, lookup: _Lookup):
        def swap_token_ids(module: nn.Module, args: tuple, kwargs: dict):
            # Only in training steps: eval loops, predict and generate run in eval mode or without grad.
            if not (module.training and self.enabled and torch.is_grad_enabled()) or lookup.p <= 0.0:
                return None
            if args:
                input_ids, rest = args[0], args[1:]
            elif "input" in kwargs or "input_ids" in kwargs:
                key = "input" if "input" in kwargs else "input_ids"
                input_ids, rest = kwargs[key], None
            else:
                return None
            if not isinstance(input_ids, torch.Tensor) or input_ids.is_floating_point() or input_ids.is_complex():
                return None
            candidates, positions = self._device_tables(input_ids.device)
            swap = swap_uniform(input_ids, lookup.p, candidates, positions, self._generator(input_ids.device))
            self._count(lookup, swap.eligible, swap.swapped)
            if rest is None:
                return args, {**kwargs, key: swap.ids}
            return (swap.ids, *rest), kwargs

        return swap_token_ids

    def _count(self, lookup: _Lookup, eligible: torch.Tensor, swapped: torch.Tensor) -> None:
        lookup.tokens_seen += eligible.numel()
        step = torch.stack([eligible.sum(), swapped.sum()])
        counts = lookup.counts.get(step.device)
        if counts is None:
            lookup.counts[step.device] = step
        else:
            counts += step

    def _check_inputs_embeds(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """Warn once when training runs on `inputs_embeds`: there are no ids to swap then."""
        if self._warned_inputs_embeds or not (module.training and self.enabled):
            return None
        if kwargs.get("inputs_embeds") is not None and kwargs.get("input_ids") is None and not args:
            self._warned_inputs_embeds = True
            warnings.warn(
                f"sse_hf: {type(module).__name__} was called with inputs_embeds instead of input_ids, so SSE cannot "
                "swap token ids and these steps train without SSE. Pass input_ids to use SSE.",
                UserWarning,
                stacklevel=2,
            )
        return None


def get_handle(model: nn.Module) -> SSEHandle | None:
    """The handle of the SSE attached to `model` (or to the model it wraps), or None."""
    return _HANDLES.get(unwrap_model(model))


def patch_model(
    model: nn.Module,
    config: SSEConfig | None = None,
    *,
    tokenizer=None,
    replace: bool = False,
    **overrides: Any,
) -> SSEHandle:
    """Apply SSE to the word-piece inputs of `model` and return the handle that undoes it.

    Works on encoders, decoders and encoder-decoders, under DDP/FSDP/DeepSpeed/accelerate wrappers
    and PEFT. The swap runs only while the model is in training mode; evaluation, `predict` and
    `generate` see the original ids. Keyword overrides change single fields: `patch_model(m, p=0.05)`.
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
    if existing is not None:
        if not replace:
            raise AlreadyPatchedError(
                f"{type(base).__name__} already has SSE attached ({existing!r}). Call handle.remove() or "
                "unpatch_model(model) first, or pass replace=True to swap in the new settings."
            )
        existing.remove()

    embeddings = find_token_embeddings(base, decoder=config.decoder_p is not None)
    model_config = getattr(base, "config", None)
    if model_config is not None and hasattr(model_config, "get_text_config"):
        model_config = model_config.get_text_config()
    declared = [rows for rows in map(_declared_rows, embeddings.values()) if rows is not None]
    vocabulary = resolve_vocabulary(
        model_config, tokenizer, table_size=min(declared) if declared else None,
        exclude_token_ids=config.exclude_token_ids,
    )
    lookups = [
        _Lookup(role=role, module=module, p=config.decoder_p if role == "decoder" else config.p)
        for role, module in embeddings.items()
    ]
    if len({id(lookup.module) for lookup in lookups}) != len(lookups):
        raise ValueError(
            f"{type(base).__name__}'s encoder and decoder call the same embedding module, so their inputs cannot be "
            "swapped with separate probabilities. Set decoder_p=None (encoder inputs only)."
        )
    handle = SSEHandle(base, config, vocabulary, lookups, wrapper=model)
    handle._table_size = max([vocabulary.size, *declared, getattr(model_config, "vocab_size", 0) or 0])
    for lookup in lookups:  # build the id tables now, outside any compiled or timed region
        weight = getattr(lookup.module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.device.type != "meta":
            handle._device_tables(weight.device)
    handle._attach()
    _refresh_compiled(model, base)
    _HANDLES[base] = handle
    return handle


def unpatch_model(model: nn.Module) -> bool:
    """Remove whatever sse_hf attached to `model`. Returns True if something was removed."""
    handle = get_handle(model)
    if handle is None:
        return False
    handle.remove()
    return True
